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

from mloop.settings import Settings, reset_settings
from mloop.store import Database

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


@pytest.fixture
def mloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings rooted in a fresh temp folder: its own MLflow sqlite store and platform DB."""
    for key in list(os.environ):
        if key.startswith("MLOOP_") and key not in ("MLOOP_REQUIRE_SERVICES",):
            monkeypatch.delenv(key)
    home = tmp_path / "mloop-home"
    monkeypatch.setenv("MLOOP_HOME", str(home))
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    reset_settings()
    settings = Settings()
    settings.ensure_home()
    yield settings
    reset_settings()
    try:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    except ImportError:
        pass


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
