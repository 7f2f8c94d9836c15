"""CPU per row of the model server's two background writers, measured in process.

Under load every request costs the server an API-call audit row and a prediction log row, both
written by background threads whose CPU is taken from serving on a small machine. This measures
that CPU directly: the calling thread's `time.thread_time()` around

- `AuditWriter._handle` on `--batch` API-call tuples (what the middleware queues for a
  single-row `/predict`: actor, method, path, status, duration, client, body digest), and
- `PredictionLogWriter._handle` on `--batch` one-row `PredictionBatch`es (20 float features
  as a dict, prediction "1", a probability, a time-ordered id as the server makes),

against a fresh SQLite file database (and a fresh PostgreSQL database with `--postgres`; only
the client side's CPU is counted, as in the server). Each round writes `--reps` batches; the
median over `--rounds` rounds is printed in microseconds per row.

    .venv/bin/python benchmarks/background_writers.py
    .venv/bin/python benchmarks/background_writers.py --postgres --rounds 7

To compare with another revision, run it with that checkout's sources first on the path
(`PYTHONPATH=/tmp/old/src`), alternating the two so the machine's load affects both alike.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mloop.governance.audit import AuditLog
from mloop.governance.audit_writer import AuditWriter
from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter
from mloop.serving.batcher import new_ids
from mloop.store import Database

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FEATURES = [f"f{i:02d}" for i in range(20)]


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="mloop-bench-") as folder:
        database = Database(f"sqlite:///{Path(folder) / 'platform.db'}")
        database.migrate()
        yield database
        database.dispose()


@contextmanager
def postgres_database() -> Iterator[Database]:
    import psycopg

    name = f"mloop_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        database.migrate()
        yield database
    finally:
        database.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api_calls(count: int, start: float) -> list[tuple]:
    """What the middleware queues for `count` single-row /predict calls."""
    digest = hashlib.sha256(b'{"f00": 1.0}').hexdigest()
    return [
        (start + i * 0.0007, "anonymous", "POST", "/predict", 200, 1.234, "127.0.0.1", digest)
        for i in range(count)
    ]


def prediction_batches(count: int) -> list[PredictionBatch]:
    """`count` one-row requests: 20 float features each, prediction "1" with a probability,
    ids as the server makes them (time-ordered)."""
    return [
        PredictionBatch(
            model_name="churn",
            model_version="3",
            created_at=datetime.now(UTC),
            ids=new_ids(1),
            rows=[{name: 0.1 * j + i * 1e-3 for j, name in enumerate(FEATURES)}],
            predictions=["1"],
            probabilities=[0.73],
            latency_ms=0.812,
        )
        for i in range(count)
    ]


def per_row(handle: Callable[[list], None], make: Callable[[int], list], batch: int, reps: int):
    """Microseconds of this thread's CPU per row over `reps` calls of `handle(batch items)`."""
    inputs = [make(rep) for rep in range(reps)]  # built outside the measured time
    started = time.thread_time()
    for items in inputs:
        handle(items)
    return (time.thread_time() - started) * 1e6 / (batch * reps)


def measure(database: Database, batch: int, reps: int, rounds: int) -> dict[str, list[float]]:
    audit = AuditWriter(AuditLog(database, b"k" * 32), batch=batch)
    predictions = PredictionLogWriter(database, batch_rows=batch)
    results: dict[str, list[float]] = {"audit": [], "prediction_log": []}
    for round_ in range(rounds):
        start = 1_800_000_000.0 + round_ * reps * batch  # one call every 0.7 ms, in order

        def calls(rep: int, start: float = start) -> list[tuple]:
            return api_calls(batch, start + rep * batch)

        results["audit"].append(per_row(audit._handle, calls, batch, reps))
        results["prediction_log"].append(
            per_row(predictions._handle, lambda _rep: prediction_batches(batch), batch, reps)
        )
    audit.close()
    predictions.close()
    assert audit.dropped == 0 and predictions.dropped == 0
    assert AuditLog(database, b"k" * 32).verify().ok
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500, help="rows per _handle call")
    parser.add_argument("--reps", type=int, default=20, help="_handle calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also PostgreSQL")
    args = parser.parse_args()
    targets = [("sqlite", sqlite_database)]
    if args.postgres:
        targets.append(("postgresql", postgres_database))
    print(f"python {sys.version.split()[0]}; {args.batch} rows x {args.reps} calls x {args.rounds}")
    print(f"{'database':<11} {'writer':<15} {'us/row median':>13}   rounds")
    for name, opener in targets:
        with opener() as database:
            results = measure(database, args.batch, args.reps, args.rounds)
        for writer, values in results.items():
            rounds = " ".join(f"{v:.1f}" for v in values)
            print(f"{name:<11} {writer:<15} {statistics.median(values):>13.1f}   {rounds}")


if __name__ == "__main__":
    main()
