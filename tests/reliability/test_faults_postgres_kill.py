"""Fault: PostgreSQL stops, the server answers predictions, and is SIGKILLed before the
database comes back.

Guarantee proven: the prediction-log and audit rows of every call answered during the outage
are in the database once it is back and the server has started again (the dead server's disk
spool is claimed and written by its successor), the audit chain verifies, and nothing is
written twice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
from sqlalchemy import func, select

from mloop.governance.audit import audit_log
from mloop.store import Database, PredictionRecord
from mloop.store.governance import AuditRow
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.loopkit import free_port, serve_process
from tests.support.waiting import wait_for

BEFORE, DURING = 10, 30


def _status(url: str) -> dict:
    try:
        return httpx.get(f"{url}/ready", timeout=5).json()
    except (httpx.TransportError, ValueError):
        return {}


def _spooled_lines(home: Path, writer: str) -> int:
    files = home.glob(f"spool/*/{writer}/*.jsonl")
    return sum(p.read_bytes().count(b"\n") - 1 for p in files)  # less each file's header


def _stored(url: str) -> tuple[int, int]:
    """(prediction-log rows, audited POST /predict calls) in the database at `url`."""
    database = Database(url)
    try:
        with database.session() as session:
            rows = session.scalar(select(func.count()).select_from(PredictionRecord))
            calls = session.scalar(
                select(func.count())
                .select_from(AuditRow)
                .where(AuditRow.action == "api.call", AuditRow.target == "POST /predict")
            )
    finally:
        database.dispose()
    return rows, calls


def test_rows_answered_in_an_outage_survive_a_sigkill_before_it_ends(
    trained_home, private_postgres
):
    home = trained_home.settings.home
    env = clean_environ(
        MLOOP_HOME=str(home),
        MLOOP_DATABASE_URL=private_postgres.url,
        MLOOP_AUDIT_PREDICTION_CALLS="true",
        GIT_PYTHON_REFRESH="quiet",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = modelkit.json_rows(trained_home.frame.head(DURING))
    server = serve_process(env, port)
    try:
        wait_for(lambda: _status(url).get("status") == "ready", "the server", timeout=300)
        with httpx.Client(base_url=url, timeout=30) as http:
            answered = [http.post("/predict", json={"features": r}) for r in rows[:BEFORE]]
            wait_for(
                lambda: _stored(private_postgres.url) == (BEFORE, BEFORE),
                "the calls before the outage to be written",
            )
            private_postgres.stop()
            answered += [http.post("/predict", json={"features": r}) for r in rows]
        assert [a.status_code for a in answered] == [200] * (BEFORE + DURING)
        wait_for(
            lambda: "prediction_log" in _status(url).get("degraded", {}),
            "/ready to name the prediction log's outage",
        )
        # every call of the outage reaches the spool on disk (not only the writers' memory)
        wait_for(
            lambda: _spooled_lines(home, "prediction-log") >= DURING,
            "the prediction rows of the outage to be spooled",
        )
        wait_for(lambda: _spooled_lines(home, "audit") >= DURING, "the audit rows to be spooled")
        server.send_signal(signal.SIGKILL)
        server.wait(30)

        private_postgres.start()
        server = serve_process(env, port)
        wait_for(lambda: _status(url).get("status") == "ready", "the restarted server")
        wait_for(
            lambda: (
                _spooled_lines(home, "prediction-log") == 0 and _spooled_lines(home, "audit") == 0
            ),
            "the dead server's spool to be written",
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)

    ids = [a.json()["prediction_id"] for a in answered]
    request_ids = {a.headers["x-request-id"] for a in answered}
    database = Database(private_postgres.url)
    try:
        with database.session() as session:
            stored = list(session.scalars(select(PredictionRecord.id)))
            calls = list(
                session.scalars(
                    select(AuditRow.detail).where(
                        AuditRow.action == "api.call", AuditRow.target == "POST /predict"
                    )
                )
            )
            total = session.scalar(select(func.count()).select_from(PredictionRecord))
    finally:
        database.dispose()
    assert set(ids) <= set(stored), f"{len(set(ids) - set(stored))} answered rows lost"
    assert total == len(stored) == len(set(stored))  # none written twice
    audited = [json.loads(detail).get("request_id") for detail in calls]
    assert request_ids <= set(audited), f"{len(request_ids - set(audited))} calls not audited"
    assert len(audited) == len(set(audited))  # each call audited once
    settings = trained_home.settings.model_copy(update={"database_url": private_postgres.url})
    assert audit_log(settings).verify().ok
