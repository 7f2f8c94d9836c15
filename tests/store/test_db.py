"""The platform database migrates itself and round-trips rows on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, select, text

from mloop.errors import ConfigError, ServiceUnavailableError
from mloop.store import Database, PredictionRecord, StageTransition, open_database

EXPECTED_TABLES = {"alembic_version", "prediction_log", "stage_transitions"}


def migration_heads() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mloop.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_create_every_table_and_are_idempotent(database_url):
    db = Database(database_url)
    db.migrate()
    db.migrate()  # a second run applies nothing and does not fail
    assert set(inspect(db.engine).get_table_names()) >= EXPECTED_TABLES
    with db.engine.connect() as conn:
        applied = {row[0] for row in conn.execute(text("select version_num from alembic_version"))}
    assert applied == migration_heads()
    db.dispose()


def test_rows_round_trip(database_url):
    db = Database(database_url)
    db.migrate()
    prediction_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(
            PredictionRecord(
                id=prediction_id,
                model_name="churn",
                model_version="3",
                input_sha256="ab" * 32,
                features={"age": 41, "region": "north"},
                prediction=1,
                probability=0.83,
                latency_ms=4.2,
            )
        )
        session.add(
            StageTransition(
                model_name="churn", version="3", from_stage="Staging", to_stage="Production"
            )
        )
    with db.session() as session:
        row = session.get(PredictionRecord, prediction_id)
        assert row.features == {"age": 41, "region": "north"}
        assert row.prediction == 1
        assert row.created_at is not None
        transition = session.scalars(select(StageTransition)).one()
        assert (transition.to_stage, transition.actor) == ("Production", "local")
    db.dispose()


def test_failed_transaction_rolls_back(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(
            StageTransition(model_name="m", version="1", from_stage="None", to_stage="Staging")
        )
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(StageTransition)).all() == []


def test_open_database_uses_settings_and_caches(mloop_home):
    first = open_database(mloop_home)
    assert first is open_database(mloop_home)
    assert str(mloop_home.home) in first.url
    assert (mloop_home.home / "mloop.db").exists()


def test_invalid_url_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid database URL"):
        Database("not a url at all")


def test_unreachable_database_is_service_unavailable():
    # Port 1 on loopback refuses at once: nothing listens there.
    db = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(ServiceUnavailableError, match="cannot migrate"):
        db.migrate()


def test_json_columns_read_what_python_writes(database_url):
    """orjson reads the JSON columns; what it refuses and Python's json writes (NaN,
    integers beyond 64 bits) still reads back through json.loads."""
    db = Database(database_url)
    db.migrate()
    values = {"plain": {"age": 41, "tags": ["a", None]}, "big": {"n": 2**70}}
    with db.session() as session:
        for key, features in values.items():
            session.add(
                PredictionRecord(
                    id=key,
                    model_name="churn",
                    model_version="1",
                    input_sha256="0" * 64,
                    features=features,
                    prediction=[0.5, 1.5],
                    latency_ms=1.0,
                )
            )
    with db.session() as session:
        for key, features in values.items():
            row = session.get(PredictionRecord, key)
            assert row.features == features
            assert row.prediction == [0.5, 1.5]
    db.dispose()


def test_read_json_falls_back_for_nan():
    from mloop.store.db import read_json

    value = read_json('{"x": NaN, "y": 1}')
    assert value["y"] == 1 and value["x"] != value["x"]  # NaN is not equal to itself
    assert read_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
