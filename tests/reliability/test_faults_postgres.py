"""Fault: PostgreSQL (the platform database) stops under load and comes back.

Guarantees proven: predictions keep being answered during the outage; every prediction-log
and audit row of a call answered before or during the outage is in the database afterwards
(the writers retry, nothing acknowledged is lost); a label posted during the outage is refused
with a 503 naming the database (never acknowledged), and recorded once it is back; `/ready`
says "degraded" while the writers are failing and "ready" again after.
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from mloop.governance.audit import audit_log
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from mloop.store import Database, PredictionRecord
from mloop.store.governance import AuditRow
from mloop.store.monitoring import FeedbackRecord
from tests.reliability.load import PredictLoad
from tests.support import modelkit
from tests.support.modelkit import sample
from tests.support.waiting import wait_for


def test_a_postgres_outage_under_load_loses_no_acknowledged_row(trained_home, private_postgres):
    settings = trained_home.settings.model_copy(
        update={"database_url": private_postgres.url, "audit_prediction_calls": True}
    )
    rows = modelkit.json_rows(trained_home.frame.head(50))
    server = ServerThread(create_app("churn@production", settings)).start()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        with PredictLoad(server.url, rows) as load:
            wait_for(lambda: load.count() >= 40, "predictions before the outage")
            before = load.count()
            first_id = load.ids[0]

            private_postgres.stop()
            outage_start = load.count()

            def degraded():
                # Each writer shows once its own write fails (the audit writer may be first).
                body = http.get("/ready").json()
                failing = body["status"] == "degraded" and "prediction_log" in body["degraded"]
                return body if failing else None

            ready = wait_for(degraded, "/ready to report the prediction log's outage")
            assert http.get("/ready").status_code == 200  # still serving
            assert "prediction_log" in ready["degraded"]
            assert ready["degraded"]["prediction_log"]["error"]
            wait_for(lambda: load.count() >= outage_start + 40, "predictions during the outage")

            refused = http.post("/feedback", json={"prediction_id": first_id, "actual": 1})
            assert refused.status_code == 503, refused.text
            assert "database is unreachable" in refused.json()["detail"]

            during = load.count()
            private_postgres.start()
            wait_for(
                lambda: http.get("/ready").json()["status"] == "ready",
                "/ready to recover",
            )
            wait_for(lambda: load.count() >= during + 20, "predictions after the outage")
        assert load.failures == [], load.failures[:5]
        assert during - before >= 40 and ready["model_version"] == "1"
        acknowledged = list(load.ids)

        labelled = http.post("/feedback", json={"prediction_id": first_id, "actual": 1})
        assert labelled.status_code == 200, labelled.text
        late = acknowledged[outage_start + 5]  # answered while the database was down
        labelled = http.post("/feedback", json={"prediction_id": late, "actual": 0})
        assert labelled.json()["status"] == "recorded", labelled.text
        server.app.state.mloop.prediction_log.flush()
        server.app.state.mloop.audit.flush()
        metrics = http.get("/metrics").text
        assert sample(metrics, "mloop_prediction_log_dropped_total") == 0
        http.close()
    finally:
        server.stop()

    database = Database(private_postgres.url)
    try:
        with database.session() as session:
            stored = set(session.scalars(select(PredictionRecord.id)))
            predict_calls = session.scalar(
                select(func.count())
                .select_from(AuditRow)
                .where(AuditRow.action == "api.call", AuditRow.target == "POST /predict")
            )
            labels = set(session.scalars(select(FeedbackRecord.prediction_id)))
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged predictions not in the log"
        assert predict_calls == len(acknowledged)  # each answered call has its audit row
        assert labels == {first_id, late}
        assert audit_log(settings).verify().ok  # the retried appends kept the chain intact
    finally:
        database.dispose()
