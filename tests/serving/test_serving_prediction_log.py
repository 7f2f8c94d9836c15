"""PredictionLogWriter on a real platform database: batching, digests, drops, draining."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter, input_digest
from mloop.store import PredictionRecord, open_database


def batch(ids, rows, *, columns=("a", "b")) -> PredictionBatch:
    return PredictionBatch(
        model_name="churn",
        model_version="3",
        created_at=datetime.now(UTC),
        ids=ids,
        rows=rows,
        predictions=[1] * len(ids),
        probabilities=[0.75] * len(ids),
        latency_ms=1.5,
        columns=columns,
    )


def stored(database) -> dict[str, PredictionRecord]:
    with database.session() as session:
        return {r.id: r for r in session.scalars(select(PredictionRecord))}


@pytest.fixture
def database(mloop_home):
    return open_database(mloop_home)


def test_rows_are_written_with_digest_and_features(database):
    with PredictionLogWriter(database) as writer:
        writer.submit(batch(["p1", "p2"], [{"a": 1, "b": "x"}, [1, "x"]]))
        writer.submit(batch(["p3"], [{"b": "y", "a": 2.5}]))
        writer.flush()
        records = stored(database)
    assert set(records) == {"p1", "p2", "p3"}
    assert records["p1"].features == {"a": 1, "b": "x"}
    assert records["p2"].features == {"a": 1, "b": "x"}  # a list row is logged by name
    assert records["p1"].input_sha256 == records["p2"].input_sha256
    assert records["p3"].input_sha256 == input_digest({"a": 2.5, "b": "y"})
    assert records["p1"].prediction == 1 and records["p1"].probability == 0.75
    assert (records["p1"].model_name, records["p1"].model_version) == ("churn", "3")
    assert writer.written == 3 and writer.dropped == 0


def test_the_digest_ignores_key_order_and_is_sha256():
    assert input_digest({"a": 1, "b": 2}) == input_digest({"b": 2, "a": 1})
    assert input_digest({"a": 1}) != input_digest({"a": 1.5})
    assert len(input_digest({"a": 1})) == 64


def test_inputs_are_not_kept_when_log_inputs_is_off(database):
    with PredictionLogWriter(database, log_inputs=False) as writer:
        writer.submit(batch(["q1"], [{"a": 1, "b": "x"}]))
    record = stored(database)["q1"]
    assert record.features is None
    assert record.input_sha256 == input_digest({"a": 1, "b": "x"})


def test_close_drains_the_queue(database):
    writer = PredictionLogWriter(database, batch_rows=2)
    for i in range(10):
        writer.submit(batch([f"r{i}"], [{"a": i, "b": "x"}]))
    writer.close()
    writer.close()  # idempotent
    assert len(stored(database)) == 10


class GatedWriter(PredictionLogWriter):
    """A writer whose thread waits at a gate before writing, so the queue can fill up."""

    def __init__(self, *args, **kwargs) -> None:
        self.gate = threading.Event()
        super().__init__(*args, **kwargs)

    def _write(self, batches) -> None:
        self.gate.wait()
        super()._write(batches)


def test_a_full_queue_drops_and_counts_instead_of_blocking(database):
    drops: list[int] = []
    writer = GatedWriter(database, max_queue=2, batch_rows=1, on_drop=drops.append)
    accepted = [writer.submit(batch([f"s{i}", f"t{i}"], [[i, "x"], [i, "y"]])) for i in range(6)]
    assert accepted.count(False) >= 3  # the thread holds at most one item, the queue two
    writer.gate.set()
    writer.close()
    assert writer.dropped == sum(drops) == 2 * accepted.count(False)
    with database.session() as session:
        count = session.scalar(select(func.count()).select_from(PredictionRecord))
    assert count == 2 * accepted.count(True)


def test_submitting_after_close_is_dropped(database):
    writer = PredictionLogWriter(database)
    writer.close()
    assert writer.submit(batch(["late"], [[1, "x"]])) is False
    assert writer.dropped == 1


def test_a_failed_write_is_counted_and_the_writer_goes_on(database):
    with PredictionLogWriter(database) as writer:
        writer.submit(batch(["dup"], [[1, "x"]]))
        writer.flush()
        writer.submit(batch(["dup"], [[1, "x"]]))  # primary key clash: the insert fails
        writer.flush()
        writer.submit(batch(["after"], [[2, "x"]]))
        writer.flush()
    assert writer.dropped == 1
    assert set(stored(database)) == {"dup", "after"}
