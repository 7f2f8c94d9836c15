"""The audit chain: appends chain by HMAC, tampering through raw SQL is named by verify, and
concurrent writers (threads and processes) on SQLite and PostgreSQL still build one chain."""

from __future__ import annotations

import io
import json
import multiprocessing
import stat
import threading

import pytest
from sqlalchemy import text

from mloop.errors import ConfigError
from mloop.governance.audit import GENESIS, AuditLog, audit_log
from mloop.settings import Settings
from mloop.store.db import Database


def _log(url: str, secret: bytes = b"k" * 32) -> AuditLog:
    database = Database(url)
    database.migrate()
    return AuditLog(database, secret)


@pytest.fixture
def chain(tmp_path) -> AuditLog:
    log = _log(f"sqlite:///{tmp_path / 'audit.db'}")
    for i in range(1, 7):
        log.record(f"user{i}", "model.promote", f"churn/{i}", stage="Production", n=i)
    return log


def _sql(log: AuditLog, statement: str) -> None:
    with log.database.engine.begin() as conn:
        conn.execute(text(statement))


def test_rows_chain_from_genesis_and_verify_clean(chain):
    rows = list(chain.rows())
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["prev_mac"] == GENESIS
    assert all(b["prev_mac"] == a["mac"] for a, b in zip(rows, rows[1:], strict=False))
    report = chain.verify()
    assert report.ok and report.rows == 6 and report.head_mac == rows[-1]["mac"]


def test_modified_row_is_named(chain):
    _sql(chain, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
    report = chain.verify()
    assert (report.ok, report.seq, report.kind) == (False, 4, "modified")
    assert "row 4 was modified" in report.message


def test_modified_detail_is_named(chain):
    _sql(chain, "UPDATE audit_log SET detail = replace(detail, '2', '9') WHERE seq = 2")
    assert (chain.verify().seq, chain.verify().kind) == (2, "modified")


def test_deleted_middle_row_is_named(chain):
    _sql(chain, "DELETE FROM audit_log WHERE seq = 3")
    report = chain.verify()
    assert (report.ok, report.seq, report.kind) == (False, 3, "deleted")
    assert "row 3 was deleted" in report.message


def test_deleted_and_renumbered_rows_are_caught(chain):
    _sql(chain, "DELETE FROM audit_log WHERE seq = 3")
    for seq in (4, 5, 6):
        _sql(chain, f"UPDATE audit_log SET seq = {seq - 1} WHERE seq = {seq}")
    _sql(chain, "UPDATE audit_head SET seq = 5")
    report = chain.verify()
    assert (report.seq, report.kind) == (3, "deleted")


def test_deleted_tail_is_named(chain):
    _sql(chain, "DELETE FROM audit_log WHERE seq >= 5")
    report = chain.verify()
    assert (report.ok, report.seq, report.kind) == (False, 5, "deleted")
    assert "rows 5 to 6 deleted from the end" in report.message


def test_reordered_rows_are_named(chain):
    _sql(chain, "UPDATE audit_log SET seq = 100 WHERE seq = 2")
    _sql(chain, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _sql(chain, "UPDATE audit_log SET seq = 3 WHERE seq = 100")
    report = chain.verify()
    assert (report.ok, report.seq, report.kind) == (False, 2, "reordered")
    assert "row 2 was reordered" in report.message


def test_another_secret_cannot_verify(chain):
    other = AuditLog(chain.database, b"x" * 32)
    report = other.verify()
    assert (report.ok, report.seq, report.kind) == (False, 1, "modified")


def test_export_since_writes_jsonl(chain):
    rows = list(chain.rows())
    out = io.StringIO()
    assert chain.export(out, since=rows[3]["created_at"]) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [4, 5, 6]
    assert lines[0]["detail"] == {"n": 4, "stage": "Production"}


def test_secret_file_is_generated_private_and_stable(mloop_home: Settings):
    first = audit_log(mloop_home)
    key = mloop_home.home / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    seq = first.record("a", "x", "t")
    again = AuditLog(first.database, key.read_text().strip().encode())
    assert again.verify().ok and seq == 1


def _append(log: AuditLog, worker: int, count: int) -> None:
    for i in range(count):
        log.record(f"w{worker}", "test.append", f"row {i}", worker=worker)


def _append_in_process(url: str, worker: int, count: int) -> None:
    log = _log(url)  # a process of its own: its own engine and connections
    _append(log, worker, count)
    log.database.dispose()


def _concurrent(url: str, processes: int = 3, threads: int = 4, each: int = 15) -> AuditLog:
    log = _log(url)
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_append_in_process, args=(url, 100 + p, each))
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    workers = [threading.Thread(target=_append, args=(log, t, each)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    return log


def test_concurrent_writers_on_sqlite_build_one_chain(tmp_path):
    log = _concurrent(f"sqlite:///{tmp_path / 'audit.db'}")
    report = log.verify()
    assert report.ok, report.message
    assert report.rows == (3 + 4) * 15


@pytest.mark.postgres
def test_concurrent_writers_on_postgres_build_one_chain(postgres_url):
    log = _concurrent(postgres_url)
    report = log.verify()
    assert report.ok, report.message
    assert report.rows == (3 + 4) * 15
    with log.database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET target = 'x' WHERE seq = 17"))
    assert (log.verify().seq, log.verify().kind) == (17, "modified")
    log.database.dispose()


def test_environment_secret_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOOP_AUDIT_SECRET", "s3cret" * 6)
    settings = Settings(home=tmp_path / "h")
    log = audit_log(settings)
    assert not (tmp_path / "h" / "audit.key").exists()
    log.record("a", "b", "c")
    assert AuditLog(log.database, b"s3cret" * 6).verify().ok
    monkeypatch.setenv("MLOOP_AUDIT_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        audit_log(Settings(home=tmp_path / "h"))
