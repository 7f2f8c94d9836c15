"""The disk spool: rows kept in order through an outage, a dead writer's file claimed by the
next, a failed drain resumed without repeats, a full disk refused cleanly; and the two writers
(prediction log, audit) writing through it to a real database."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from mloop.background import Outage
from mloop.spool import Spool, SpooledWrites, spool_directory
from mloop.store import Database, PredictionRecord
from mloop.store.db import transient


class Target:
    """A database stand-in that fails while `down` (a transient error) and records writes."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.down = False
        self.fail_after: int | None = None  # fail once this many more writes succeeded

    def __call__(self, rows: list) -> None:
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.fail_after = None
                raise OperationalError("insert", {}, Exception("connection lost"))
            self.fail_after -= 1
        if self.down:
            raise OperationalError("insert", {}, Exception("connection refused"))
        self.rows.extend(tuple(r) for r in rows)


def _writes(spool: Spool | None, target: Target, lost: list[int]) -> SpooledWrites:
    return SpooledWrites(
        spool,
        target,
        what="writing rows",
        outage=Outage(),
        give_up_after=0.0,
        transient=transient,
        on_lost=lost.append,
    )


def test_an_outage_spools_rows_in_order_and_the_drain_writes_them_first(tmp_path):
    target, lost = Target(), []
    writes = _writes(Spool(tmp_path), target, lost)
    assert writes([("a", 1)])
    target.down = True
    assert writes([("b", 2)]) and writes([("c", 3), ("d", 4)])  # answered: spooled
    assert writes.outage.active and "connection refused" in writes.outage.error
    assert writes.spool.pending() and target.rows == [("a", 1)]
    target.down = False
    assert writes([("e", 5)])  # after the spooled rows, whether the drain was due or not
    assert writes.retry_spool(now=True)
    assert target.rows == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]
    assert not writes.outage.active and not writes.spool.pending() and lost == []
    assert writes([("f", 6)]) and target.rows[-1] == ("f", 6)  # written at once again


def test_a_drain_that_fails_midway_resumes_where_it_stopped(tmp_path):
    spool = Spool(tmp_path, chunk_rows=2)
    spool.append([(i,) for i in range(7)])
    target = Target()
    target.fail_after = 2  # two chunks commit, the third fails
    with pytest.raises(OperationalError):
        spool.drain(target)
    assert target.rows == [(0,), (1,), (2,), (3,)] and spool.pending()
    assert spool.drain(target) == 3
    assert target.rows == [(i,) for i in range(7)]  # nothing written twice
    assert not spool.pending()


def test_a_dead_writers_file_is_claimed_by_the_next_and_a_live_ones_is_not(tmp_path):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from mloop.spool import Spool
                spool = Spool(Path({str(tmp_path)!r}))
                assert spool.append([["x", i] for i in range(3)])
                print("spooled", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "spooled"
        assert not Spool(tmp_path).pending()  # its writer is alive: not ours to take
    finally:
        child.kill()  # SIGKILL: no close, no cleanup
        child.wait()
    heir = Spool(tmp_path)
    assert heir.pending()
    target = Target()
    assert heir.drain(target) == 3 and target.rows == [("x", 0), ("x", 1), ("x", 2)]
    assert list(tmp_path.glob("*.jsonl")) == []  # the claimed file is gone once written
    assert not Spool(tmp_path).pending()


def test_a_torn_last_line_is_skipped(tmp_path):
    spool = Spool(tmp_path)
    spool.append([("a",), ("b",)])
    spool.close()  # pending rows stay
    (path,) = tmp_path.glob("*.jsonl")
    with path.open("ab") as file:
        file.write(b'["c"')  # a crash mid-append: never acknowledged as spooled
    target = Target()
    assert Spool(tmp_path).drain(target) == 2 and target.rows == [("a",), ("b",)]


def test_a_disk_that_refuses_the_spool_leaves_no_torn_line(tmp_path):
    """A file size limit (EFBIG, as a full disk gives ENOSPC) in a child process."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from mloop.spool import Spool
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        spool = Spool(Path({str(tmp_path)!r}))
        assert spool.append([["small"]])
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        assert spool.append([["x" * 100] for _ in range(100)]) is False
        assert spool.append([["after"]])
        spool.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    target = Target()
    assert Spool(tmp_path).drain(target) == 2
    assert target.rows == [("small",), ("after",)]


def test_a_spooled_row_no_database_accepts_is_dropped_and_counted(tmp_path):
    lost: list[int] = []

    def refuse(rows: list) -> None:
        raise IntegrityError("insert", {}, Exception("duplicate key"))

    writes = _writes(Spool(tmp_path), Target(), lost)
    writes.spool.append([("dup",)])
    writes._write = refuse
    assert writes.retry_spool(now=True) and lost == [1] and not writes.spool.pending()


def test_without_a_spool_an_outage_is_retried_in_memory_then_counted_lost():
    target, lost = Target(), []
    target.down = True
    writes = _writes(None, target, lost)
    assert writes([("a",)]) is False and lost == [1]


def test_spool_folders_are_per_database(tmp_path):
    one = spool_directory(tmp_path, "sqlite:///a.db", "audit")
    assert one == spool_directory(tmp_path, "sqlite:///a.db", "audit")
    assert one != spool_directory(tmp_path, "postgresql://db/mloop", "audit")
    assert one.parent.parent == tmp_path / "spool"


def test_the_prediction_log_spools_through_an_outage_into_a_real_database(tmp_path):
    from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter

    database = Database(f"sqlite:///{tmp_path / 'log.db'}")
    database.migrate()
    writer = PredictionLogWriter(database, interval=0.01, spool_dir=tmp_path / "spool")
    real, down = writer._writes._write, [True]

    def flaky(records: list) -> None:
        if down[0]:
            raise OperationalError("insert", {}, Exception("the database is away"))
        real(records)

    writer._writes._write = flaky
    at = datetime(2026, 12, 6, 21, 0, 0, 123456, tzinfo=UTC)
    for i in range(3):
        batch = PredictionBatch(
            ids=[f"p{i}"], rows=[{"x": float(i)}], predictions=[i % 2], probabilities=[0.5],
            model_name="m", model_version="1", latency_ms=1.5, created_at=at,
        )  # fmt: skip
        assert writer.submit(batch)
    writer.flush()
    assert writer.outage.active and writer._writes.spool.pending()
    down[0] = False
    writer.close()  # drains the spool before it stops
    with database.session() as session:
        stored = session.scalars(select(PredictionRecord).order_by(PredictionRecord.id)).all()
        assert [(r.id, r.prediction, r.created_at.replace(tzinfo=UTC)) for r in stored] == [
            (f"p{i}", i % 2, at) for i in range(3)
        ]
    assert writer.dropped == 0 and not list(Path(tmp_path / "spool").glob("*.jsonl"))
    database.dispose()
