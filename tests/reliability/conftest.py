"""Fixtures of the fault tests: a trained churn model in its own home, private services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import modelkit
from tests.support.services import PrivatePostgres, PrivateRedis


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> modelkit.TrainedModel:
    """churn v1 at production in a home of its own (SQLite MLflow store)."""
    return modelkit.train_and_register(
        modelkit.home_settings(tmp_path_factory.mktemp("faults-home"))
    )


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test alone: it may be stopped (never the shared one)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'mloop[postgres]'")
    server = PrivatePostgres()
    yield server
    server.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of this test alone: it may be killed (never the shared one)."""
    server = PrivateRedis()
    yield server
    server.close()
