"""The audit chain: appends chain by HMAC, tampering through raw SQL is named by verify, and
concurrent writers (threads and processes) on SQLite and PostgreSQL still build one chain."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import multiprocessing
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from mloop.errors import ConfigError
from mloop.governance.audit import (
    GENESIS,
    AuditLog,
    _detail_text,
    _mac,
    _mac_content,
    audit_log,
)
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


# --------------------------------------------------------------- the signed bytes, fast and old


def _old_mac(secret: bytes, *fields: str) -> str:
    """The MAC as first defined: HMAC-SHA256 over json.dumps of the six fields."""
    content = json.dumps(list(fields), separators=(",", ":"))
    return hmac.new(secret, content.encode(), hashlib.sha256).hexdigest()


NON_ASCII = ["é", "中", "\u2028", "\U0001f600", "\ud800", "\x7f"]


@pytest.mark.parametrize("char", [chr(i) for i in range(128)] + NON_ASCII)
def test_signed_bytes_are_json_dumps_bytes_for_every_character(char):
    for position in range(6):
        fields = ["a" * 64, "2027-01-15T08:00:00.500000Z", "bob", "api.call", "POST /x", "{}"]
        fields[position] = f"x{char}y{char}"
        expected = json.dumps(fields, separators=(",", ":")).encode()
        assert _mac_content(*fields) == expected
        assert _mac(b"k" * 32, *fields) == _old_mac(b"k" * 32, *fields)


def test_signed_bytes_of_values_that_are_not_strings_are_json_dumps_bytes():
    class Text(str):
        pass

    for odd in (None, 7, 1.5, Text("sub")):
        fields = [GENESIS, "2027-01-15T08:00:00.500000Z", "bob", odd, "t", "{}"]
        assert _mac_content(*fields) == json.dumps(fields, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "detail",
    [
        {"method": "POST", "path": "/predict", "status": 200, "duration_ms": 1.234, "client": None},
        {"z": "é中😀", "a": True, "m": -(2**63), "big": 2**70, "f": 1e16, "tiny": 5e-324},
        {"nan": float("nan"), "inf": float("inf")},
        {"nested": {"b": [1, {"d": 2, "c": 3}]}, "a": "x"},
        {"when": datetime(2027, 1, 15, tzinfo=UTC), "path": Path("/tmp/x")},
        {"ctl": '\x00\x1f\x7f"\\/', "ü": 1, "U": 2},
        {},
    ],
)
def test_stored_detail_parses_to_what_json_dumps_wrote_with_sorted_keys(detail):
    old = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
    new = _detail_text(detail)
    assert _same(json.loads(new), json.loads(old))
    assert list(json.loads(new)) == sorted(detail)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def test_rows_signed_the_old_way_and_the_new_way_verify_together(database):
    """An old chain (details as json.dumps wrote them, non-ASCII escaped) goes on with new
    appends, and the whole chain also checks out under the old MAC definition."""
    secret = b"s" * 32
    log = AuditLog(database, secret)
    prev = GENESIS
    with database.engine.begin() as conn:
        for seq, detail in enumerate([{"who": "zoë", "n": 1}, {"path": "/predict", "s": 200}], 1):
            text_ = json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)
            fields = (prev, f"2027-01-15T08:00:0{seq}.000000Z", "old", "api.call", "GET /é", text_)
            mac = _old_mac(secret, *fields)
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, created_at, actor, action, target, detail, "
                    "prev_mac, mac) VALUES (:seq, :at, :actor, :action, :target, :detail, "
                    ":prev, :mac)"
                ),
                {"seq": seq, "mac": mac}
                | dict(
                    zip(["prev", "at", "actor", "action", "target", "detail"], fields, strict=True)
                ),
            )
            prev = mac
        conn.execute(text("UPDATE audit_head SET seq = 2, mac = :mac"), {"mac": prev})
    log.record("zoë", "model.promote", "churn/3", stage="Production", note="naïve\x7f")
    log.record("new", "api.call", "POST /predict", status=200, duration_ms=0.5, client=None)
    assert log.verify().ok
    rows = list(log.rows())
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["detail"] == {"note": "naïve\x7f", "stage": "Production"}
    for row in rows:
        fields = [row[k] for k in ("prev_mac", "created_at", "actor", "action", "target")]
        with database.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT detail FROM audit_log WHERE seq = :s"), {"s": row["seq"]}
            ).scalar_one()
        assert _old_mac(secret, *fields, stored) == row["mac"]
