"""Jobs fixtures: a small registered model per session, a job queue on SQLite or PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).parent))

import modelkit  # noqa: E402  (tests/serving/modelkit.py)

from mloop.jobs.queue import JobQueue  # noqa: E402
from mloop.store.db import Database  # noqa: E402


@pytest.fixture(scope="session")
def jobs_model(tmp_path_factory: pytest.TempPathFactory) -> modelkit.TrainedModel:
    """`churn` version 1 at alias `production`, on its own MLOOP_HOME."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("jobs-home"))
    return modelkit.train_and_register(settings)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path: Path) -> Iterator[Database]:
    """A migrated platform database: SQLite in a temp folder, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def queue(database: Database) -> JobQueue:
    return JobQueue(database, lease_seconds=5.0, backoff_seconds=0.05, max_attempts=3)
