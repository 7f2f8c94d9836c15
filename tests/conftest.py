"""Shared fixtures: an isolated MLOOP_HOME per test, and real services that skip or fail.

Tests that need PostgreSQL or Redis skip with the reason when the service is absent, unless
MLOOP_REQUIRE_SERVICES=1 (set by .ci/run), in which case they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.settings import Settings
from mloop.store import Database
from tests.support import stores
from tests.support.env import home_env

PG_ADMIN_URL = os.environ.get("MLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MLOOP_TEST_REDIS", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get("MLOOP_REQUIRE_SERVICES") == "1"


def service_missing(reason: str) -> None:
    """Skip the test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"required service unavailable (MLOOP_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One migrated MLflow store per session, copied into each test home (tests/support/stores)."""
    stores.use_template_folder(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def mloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings rooted in a fresh temp folder: its own MLflow sqlite store and platform DB."""
    with home_env(tmp_path / "mloop-home", monkeypatch) as settings:
        yield settings


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        service_missing("psycopg is not installed: pip install 'mloop[postgres]'")
    if not port_open("127.0.0.1", 5432):
        service_missing("PostgreSQL is not listening on 127.0.0.1:5432")
    name = f"mloop_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        service_missing(f"cannot create a PostgreSQL test database: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """The local Redis (db 15), flushed before the test."""
    try:
        import redis
    except ImportError:
        service_missing("redis is not installed: pip install 'mloop[redis]'")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis is not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated platform database: SQLite in a temp folder, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'platform.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    db.migrate()
    yield db
    db.dispose()
