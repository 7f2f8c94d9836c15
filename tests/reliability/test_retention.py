"""Retention and export (issue 15 item 5), on real SQLite and PostgreSQL databases.

Old prediction-log and feedback rows go by age and by size; the audit chain's prefix is pruned
only behind a signed checkpoint, after which `verify` still vouches for every row and catches
an edited row, a forged or deleted checkpoint, and rows deleted past it. Exports write JSON
Lines and Parquet, filtered by time and model.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.errors import ConflictError
from mloop.governance.audit import AuditEvent, AuditLog, audit_log
from mloop.governance.checkpoints import audit_key, checkpoint_mac, prune_audit, verify
from mloop.governance.retention import Policy, RetentionTimer, apply_retention
from mloop.serving.app import create_app
from mloop.settings import Settings, reset_settings
from mloop.store import Database, PredictionRecord
from mloop.store.monitoring import FeedbackRecord
from tests.support.apps import in_process
from tests.support.env import clean_environ
from tests.support.waiting import wait_for

SECRET = b"r" * 32
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
runner = CliRunner()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chain(database: Database, old: int = 30, young: int = 20) -> AuditLog:
    """`old` events 40 days back, then `young` events 1 day back."""
    log = AuditLog(database, SECRET)
    events = [
        AuditEvent("alice", "model.promote", f"churn/{i}", {"i": i}, _iso(NOW - timedelta(40)))
        for i in range(old)
    ] + [
        AuditEvent("bob", "approval.approve", f"req/{i}", {"i": i}, _iso(NOW - timedelta(1)))
        for i in range(young)
    ]
    log.append(events)
    return log


def _sql(database: Database, statement: str, **params) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(statement), params)


def _pruned(database: Database) -> AuditLog:
    log = _chain(database)
    (outcome,) = apply_retention(database, SECRET, [Policy("audit", days=10)], now=NOW)
    assert (outcome.deleted, outcome.kept) == (30, 20)
    assert outcome.checkpoint["last_seq"] == 30
    return log


# ------------------------------------------------------------------------------------ audit


def test_pruned_chain_verifies_from_its_checkpoint_and_says_what_it_vouches_for(database):
    log = _pruned(database)
    log.record("carol", "audit.verify", "chain")  # appends after pruning chain on as before
    report = verify(database, SECRET)
    assert report.ok, report.message
    assert (report.first_row, report.last_row, report.rows) == (31, 51, 21)
    assert report.checkpoint.last_seq == 30
    assert report.checkpoint.first_at == _iso(NOW - timedelta(40))
    assert "vouches for rows 1 to 30" in report.message
    assert "rows 31 to 51 verified" in report.message
    with database.session() as session:
        assert session.scalar(text("select min(seq) from audit_log")) == 31


def test_a_row_edited_after_pruning_is_caught(database):
    _pruned(database)
    _sql(database, "update audit_log set actor = 'mallory' where seq = 40")
    report = verify(database, SECRET)
    assert (report.ok, report.kind, report.seq) == (False, "modified", 40)


def test_a_forged_checkpoint_is_caught(database):
    _pruned(database)
    # claim that rows up to 35 were pruned: move the checkpoint, delete the rows it now covers
    with database.engine.begin() as conn:
        mac35 = conn.execute(text("select mac from audit_log where seq = 35")).scalar()
    _sql(database, "update audit_checkpoints set last_seq = 35, last_mac = :m", m=mac35)
    _sql(database, "delete from audit_log where seq <= 35")
    report = verify(database, SECRET)
    assert (report.ok, report.kind) == (False, "checkpoint")
    assert "forged or modified" in report.message


def test_a_checkpoint_signed_with_another_key_is_caught(database):
    _pruned(database)
    with database.engine.begin() as conn:
        row = conn.execute(text("select * from audit_checkpoints")).mappings().one()
    fields = {k: row[k] for k in ("created_at", "last_seq", "last_mac", "pruned")}
    fields.update(first_at=row["first_at"], last_at=row["last_at"], prev_mac=row["prev_mac"])
    forged = checkpoint_mac(b"x" * 32, **fields)
    _sql(database, "update audit_checkpoints set mac = :m", m=forged)
    assert verify(database, SECRET).kind == "checkpoint"
    assert verify(database, SECRET).ok is False


def test_deleting_the_checkpoint_or_the_rows_after_it_is_caught(database):
    _pruned(database)
    _sql(database, "delete from audit_log where seq = 31")
    report = verify(database, SECRET)
    assert (report.ok, report.kind, report.seq) == (False, "deleted", 31)


def test_deleting_the_checkpoint_is_caught(database):
    _pruned(database)
    _sql(database, "delete from audit_checkpoints")
    report = verify(database, SECRET)
    assert (report.ok, report.kind, report.seq) == (False, "deleted", 1)


def test_checkpoints_chain_and_a_deleted_middle_one_is_caught(database):
    log = _chain(database, old=10, young=0)
    assert prune_audit(database, SECRET, 4).last_seq == 4
    log.record("bob", "model.promote", "churn/2")
    second = prune_audit(database, SECRET, 8)
    assert (second.last_seq, second.first_at) == (8, _iso(NOW - timedelta(40)))
    assert prune_audit(database, SECRET, 8) is None  # nothing left before row 8
    assert verify(database, SECRET).ok
    _sql(database, "delete from audit_checkpoints where last_seq = 4")
    report = verify(database, SECRET)
    assert (report.ok, report.kind) == (False, "checkpoint")
    assert "does not follow" in report.message


def test_a_broken_chain_is_never_pruned(database):
    _chain(database)
    _sql(database, "update audit_log set target = 'churn/99' where seq = 5")
    with pytest.raises(ConflictError, match="row 5 was modified"):
        apply_retention(database, SECRET, [Policy("audit", days=10)], now=NOW)
    with database.session() as session:
        assert session.scalar(text("select count(*) from audit_log")) == 50
        assert session.scalar(text("select count(*) from audit_checkpoints")) == 0


def test_audit_size_limit_and_dry_run(database):
    _chain(database)
    rule = Policy("audit", rows=15)
    (dry,) = apply_retention(database, SECRET, [rule], dry_run=True, now=NOW)
    assert (dry.deleted, dry.kept, dry.checkpoint) == (35, 15, None)
    assert verify(database, SECRET).rows == 50  # nothing changed
    (done,) = apply_retention(database, SECRET, [rule], now=NOW)
    assert (done.deleted, done.kept, done.checkpoint["last_seq"]) == (35, 15, 35)
    assert verify(database, SECRET).ok


# ------------------------------------------------------------------- predictions, feedback


def _predictions(
    database: Database, days: list[float], model: str = "churn", now: datetime = NOW
) -> None:
    with database.session() as session:
        for i, age in enumerate(days):
            session.add(
                PredictionRecord(
                    id=f"{model}-{i:04d}",
                    created_at=now - timedelta(days=age),
                    model_name=model,
                    model_version=str(1 + i % 2),
                    input_sha256="0" * 64,
                    features={"tenure": i, "plan": "basic"},
                    prediction=i % 2,
                    probability=0.25,
                    latency_ms=1.5,
                )
            )


def _count(database: Database, table) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_prediction_log_by_age_and_by_size(database):
    _predictions(database, [40, 35, 20, 5, 1, 0.5])
    (dry,) = apply_retention(
        database, SECRET, [Policy("predictions", days=30)], dry_run=True, now=NOW
    )
    assert (dry.deleted, _count(database, PredictionRecord)) == (2, 6)
    (aged,) = apply_retention(database, SECRET, [Policy("predictions", days=30)], now=NOW)
    assert (aged.deleted, aged.kept) == (2, 4)
    (sized,) = apply_retention(database, SECRET, [Policy("predictions", days=30, rows=3)], now=NOW)
    assert (sized.deleted, sized.kept) == (1, 3)
    with database.session() as session:
        left = session.scalars(select(PredictionRecord.id).order_by(PredictionRecord.id)).all()
    assert left == ["churn-0003", "churn-0004", "churn-0005"]  # the newest three


def test_feedback_by_age(database):
    with database.session() as session:
        for i, age in enumerate([100, 50, 2]):
            session.add(
                FeedbackRecord(
                    prediction_id=f"p{i}",
                    received_at=NOW - timedelta(days=age),
                    model_name="churn",
                    model_version="1",
                    actual=1,
                    prediction=0,
                    probability=0.4,
                    predicted_at=NOW - timedelta(days=age),
                )
            )
    (outcome,) = apply_retention(database, SECRET, [Policy("feedback", days=60)], now=NOW)
    assert (outcome.deleted, outcome.kept) == (1, 2)
    assert _count(database, FeedbackRecord) == 2


def test_no_active_policy_touches_nothing(database):
    _predictions(database, [400])
    assert apply_retention(database, SECRET, [Policy("predictions")], now=NOW) == []
    assert _count(database, PredictionRecord) == 1


def test_the_timer_applies_the_policies_in_the_background(database):
    _predictions(database, [4000, 3000, 0])
    timer = RetentionTimer(database, SECRET, [Policy("predictions", days=365)], 3600).start()
    try:
        wait_for(lambda: timer.runs >= 1, "a retention pass")
    finally:
        timer.stop()
    assert _count(database, PredictionRecord) == 1


# ---------------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_home(mloop_home, database, monkeypatch):
    """MLOOP_HOME for the CLI with its platform database on SQLite or PostgreSQL."""
    monkeypatch.setenv("MLOOP_DATABASE_URL", database.url)
    reset_settings()
    yield mloop_home, database
    reset_settings()


def run(*args: str, env: dict | None = None):
    reset_settings()
    result = runner.invoke(app, list(args), env=env)
    reset_settings()
    return result


def test_cli_predictions_export_jsonl_and_parquet_with_filters(cli_home, tmp_path):
    _, database = cli_home
    _predictions(database, [40, 20, 5, 1])
    _predictions(database, [3], model="other")
    since, until = (NOW - timedelta(days=30)).isoformat(), (NOW - timedelta(days=2)).isoformat()
    result = run("predictions", "export", "--model", "churn", "--since", since, "--until", until)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["churn-0001", "churn-0002"]
    assert rows[0]["features"] == {"plan": "basic", "tenure": 1}
    out = tmp_path / "p.parquet"
    result = run("predictions", "export", "--model", "churn/1", "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == ["churn-0000", "churn-0002"]  # version 1, time order
    assert json.loads(table[0]["features"]) == {"plan": "basic", "tenure": 0}


def test_cli_exports_refuse_bad_input_clearly(cli_home):
    result = run("predictions", "export", "--format", "xml")
    assert result.exit_code != 0
    assert "invalid --format 'xml'" in " ".join(result.output.split())
    result = run("audit", "export", "--format", "parquet")
    assert "Parquet needs a file" in " ".join(result.output.split())
    result = run("predictions", "export", "--since", "last tuesday")
    assert "invalid --since" in " ".join(result.output.split())


def test_cli_retention_apply_then_audit_verify_and_parquet_export(cli_home, tmp_path):
    _, database = cli_home
    env = {"MLOOP_RETENTION_AUDIT_ROWS": "5", "MLOOP_RETENTION_PREDICTIONS_DAYS": "30"}
    settings = Settings()  # the CLI's: MLOOP_HOME's audit key, the test's database
    log = audit_log(settings)
    for i in range(12):
        log.record("alice", "model.promote", f"churn/{i}")
    _predictions(database, [400, 1], now=datetime.now(UTC))  # the CLI's clock is real
    result = run("retention", "apply", "--dry-run", env=env)
    assert result.exit_code == 0, result.output
    assert "would delete" in result.output
    assert verify(database, audit_key(settings)).rows == 12
    result = run("retention", "apply", "--json", env=env)
    assert result.exit_code == 0, result.output
    outcomes = {o["table"]: o for o in json.loads(result.stdout)}
    assert outcomes["audit"]["deleted"] == 7 and outcomes["predictions"]["deleted"] == 1
    result = run("audit", "verify")
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert "checkpoint 1 (signature valid) vouches for rows 1 to 7" in said
    out = tmp_path / "audit.parquet"
    result = run("audit", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    # rows 8..12 remain, then the two retention.apply events the pass recorded
    assert [r["seq"] for r in rows] == [8, 9, 10, 11, 12, 13, 14]
    assert rows[-1]["action"] == "retention.apply"
    with in_process(create_app("ghost/1", Settings(), log_predictions=False)) as http:
        rest = http.get("/audit/verify")  # the REST route verifies from the checkpoint too
    assert rest.status_code == 200 and rest.json()["ok"] is True, rest.text
    assert rest.json()["checkpoint"]["last_seq"] == 7 and rest.json()["rows_range"][0] == 8
    _sql(database, "update audit_log set actor = 'mallory' where seq = 9")
    result = run("audit", "verify")
    assert result.exit_code == 10
    assert "row 9 was modified" in " ".join(result.output.split())


def test_mloop_worker_applies_the_policies_every_interval(mloop_home, database):
    """The job worker is the process that applies retention (not every server worker)."""
    _predictions(database, [400, 0], now=datetime.now(UTC))
    env = clean_environ(
        MLOOP_HOME=str(mloop_home.home),
        MLOOP_DATABASE_URL=database.url,
        MLOOP_RETENTION_PREDICTIONS_DAYS="30",
        MLOOP_RETENTION_INTERVAL_SECONDS="1",
    )
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "worker"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _count(database, PredictionRecord) == 1, "the worker's retention pass")
        _predictions(database, [500], model="late", now=datetime.now(UTC))  # the next interval
        wait_for(lambda: _count(database, PredictionRecord) == 1, "a second retention pass")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    with database.engine.connect() as conn:
        passes = conn.execute(
            text("select actor, target from audit_log where action = 'retention.apply'")
        ).all()
    assert [tuple(p) for p in passes] == [("mloop:worker", "predictions")] * 2  # each audited
