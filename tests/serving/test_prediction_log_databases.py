"""The prediction log's pre-serialized JSON inserts on SQLite and PostgreSQL: the stored
features are the canonical text whose sha256 is `input_sha256`, numpy values included."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select, text

from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter, input_digest
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
