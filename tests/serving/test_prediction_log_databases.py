"""The prediction log's pre-serialized JSON inserts on SQLite and PostgreSQL: the stored
features are the canonical text whose sha256 is `input_sha256`, numpy values included."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import JSON, bindparam, func, select, text
from sqlalchemy.types import TypeDecorator

from mloop.monitoring.prediction_log import (
    _COLUMNS,
    PredictionBatch,
    PredictionLogWriter,
    canonical_json,
    input_digest,
)
from mloop.store import PredictionRecord


def test_rows_round_trip_and_the_stored_text_is_the_digested_one(database):
    rows = [{"b": "x", "a": 1.5}, [np.float64(2.0), "y"], {"a": None, "b": "é"}]
    batch = PredictionBatch(
        model_name="churn",
        model_version="3",
        created_at=datetime.now(UTC),
        ids=["p1", "p2", "p3"],
        rows=rows,
        predictions=[np.int64(1), "no", None],
        probabilities=[0.75, None, 0.5],
        latency_ms=1.5,
        columns=("a", "b"),
    )
    with PredictionLogWriter(database) as writer:
        assert writer.submit(batch)
        writer.flush()
    assert writer.written == 3 and writer.dropped == 0
    with database.session() as session:
        stored = {r.id: r for r in session.scalars(select(PredictionRecord))}
    assert stored["p1"].features == {"a": 1.5, "b": "x"}
    assert stored["p2"].features == {"a": 2.0, "b": "y"}
    assert stored["p3"].features == {"a": None, "b": "é"}
    assert [stored[i].prediction for i in ("p1", "p2", "p3")] == [1, "no", None]
    assert stored["p2"].probability is None
    assert stored["p1"].input_sha256 == input_digest({"a": 1.5, "b": "x"})
    with database.engine.connect() as conn:
        query = "select cast(features as text), input_sha256 from prediction_log"
        raw = conn.execute(text(query)).all()
    for features, digest in raw:
        assert hashlib.sha256(features.encode()).hexdigest() == digest


class _JSONText(TypeDecorator):
    """The JSON column type the writer bound before its rows went to the driver directly."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect):
        return None


BEFORE = PredictionRecord.__table__.insert().values(
    features=bindparam("features", type_=_JSONText()),
    prediction=bindparam("prediction", type_=_JSONText()),
)
COLUMNS = [c.name for c in PredictionRecord.__table__.c]


def _awkward_batch(keep: str) -> PredictionBatch:
    """Values that test each column's conversion and COPY's text escaping."""
    texts = ["tab\there", "new\nline", "back\\slash", "\\N", "quote\"'", "é中😀", "\x01\x7f", ""]
    rows = [{"t": t, "n": np.float32(0.25), "i": np.int64(7), "b": True} for t in texts]
    rows[1] = [1e300, "\\.", None, np.nan]  # a list in `columns` order
    count = len(rows)
    return PredictionBatch(
        model_name="churn\t\\",
        model_version="3",
        created_at=datetime(2027, 1, 15, 9, 30, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        ids=[f"{keep}-{i}" for i in range(count)],
        rows=rows,
        predictions=[np.int64(1), "no\n", None, [1, 2], {"b": 1, "a": "\\"}, 0.5, True, "x"],
        probabilities=[0.75, None, np.float64(0.5), 1, 1e-300, 0.1 + 0.2, None, 2.5],
        latency_ms=1.5,
        columns=("b", "i", "n", "t"),
    )


def _stored(database, prefix: str) -> dict[str, tuple]:
    """Every column as the database renders it as text, by id without the prefix."""
    casts = ", ".join(f"cast({name} as text)" for name in COLUMNS)
    query = f"select {casts} from prediction_log where id like '{prefix}-%'"
    with database.engine.connect() as conn:
        return {row[0].split("-", 1)[1]: row[1:] for row in conn.execute(text(query))}


@pytest.mark.parametrize("log_inputs", [True, False])
def test_rows_are_stored_exactly_as_sqlalchemy_core_stored_them(database, log_inputs):
    writer = PredictionLogWriter(database, log_inputs=log_inputs)
    batch = _awkward_batch("fast")
    assert writer.submit(batch)
    writer.close()
    assert (writer.written, writer.dropped) == (len(batch), 0)
    before = [
        dict(zip(_COLUMNS, record, strict=True)) | {"id": record[0].replace("fast", "core")}
        for record in writer._records([batch])
    ]
    with database.engine.begin() as conn:
        conn.execute(BEFORE, before)
    fast, core = _stored(database, "fast"), _stored(database, "core")
    assert len(fast) == len(batch) and fast == core
    features = [r[COLUMNS.index("features") - 1] for r in fast.values()]
    assert all(f is None for f in features) != log_inputs
    # read back through the ORM, as feedback and reports do, and by the time index
    with database.session() as session:
        records = {r.id: r for r in session.scalars(select(PredictionRecord))}
        start = batch.created_at - timedelta(seconds=1)
        in_window = session.scalar(
            select(func.count()).where(
                PredictionRecord.model_name == batch.model_name,
                PredictionRecord.model_version == "3",
                PredictionRecord.created_at >= start,
                PredictionRecord.created_at < start + timedelta(seconds=2),
            )
        )
    assert in_window == 2 * len(batch)
    for i in range(len(batch)):
        new, old = records[f"fast-{i}"], records[f"core-{i}"]
        for name in COLUMNS[1:]:
            assert _same(getattr(new, name), getattr(old, name)), name
    if log_inputs:
        assert records["fast-0"].features == {"b": True, "i": 7, "n": 0.25, "t": "tab\there"}
        assert records["fast-1"].features == {"b": 1e300, "i": "\\.", "n": None, "t": None}
    assert records["fast-4"].prediction == {"a": "\\", "b": 1}
    assert records["fast-5"].probability == 0.1 + 0.2


def _same(a, b) -> bool:
    return (a != a and b != b) or (a == b and type(a) is type(b))


def test_repeated_labels_keep_their_own_json_type(database):
    """Labels' JSON is written once per label and call: 1, True and "1" stay apart."""
    labels = [1, True, "1", 1.5, np.int64(1), False, 0, "1", True, 1, None, [1, 2]] * 3
    batch = PredictionBatch(
        model_name="m",
        model_version="1",
        created_at=datetime.now(UTC),
        ids=[f"p{i:02d}" for i in range(len(labels))],
        rows=[{"a": float(i)} for i in range(len(labels))],
        predictions=labels,
        probabilities=[None] * len(labels),
        latency_ms=0.5,
    )
    with PredictionLogWriter(database) as writer:
        texts = [record[_COLUMNS.index("prediction")] for record in writer._records([batch])]
        assert texts == [canonical_json(label).decode() for label in labels]
        assert writer.submit(batch)
        writer.flush()
    with database.session() as session:
        query = select(PredictionRecord).order_by(PredictionRecord.id)
        stored = [r.prediction for r in session.scalars(query)]
    expected = [1, True, "1", 1.5, 1, False, 0, "1", True, 1, None, [1, 2]] * 3
    assert [(type(v), v) for v in stored] == [(type(v), v) for v in expected]
