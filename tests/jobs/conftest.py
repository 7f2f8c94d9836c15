"""Jobs fixtures: a small registered model per session, a job queue on SQLite or PostgreSQL."""

from __future__ import annotations

import pytest

from mloop.jobs.queue import JobQueue
from mloop.store.db import Database
from tests.support import modelkit


@pytest.fixture(scope="session")
def jobs_model(tmp_path_factory: pytest.TempPathFactory) -> modelkit.TrainedModel:
    """`churn` version 1 at alias `production`, on its own MLOOP_HOME."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("jobs-home"))
    return modelkit.train_and_register(settings)


@pytest.fixture
def queue(database: Database) -> JobQueue:
    return JobQueue(database, lease_seconds=5.0, backoff_seconds=0.05, max_attempts=3)
