"""POST /alerts/webhook: validation, durable records, forwarding (real HTTP and SMTP
receivers on 127.0.0.1), and the retraining action with its deduplication and resume.

The app runs in-process (tests/support/apps.py); the receivers it forwards to are real."""

from __future__ import annotations

import json

import pytest

from mloop.monitoring.retrain import RetrainWorker
from mloop.serving.app import create_app
from mloop.store import open_database
from mloop.store.monitoring import RetrainJob
from tests.support import loopkit, modelkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("alerts-home"))
    return modelkit.train_and_register(settings)


def serve(settings, **changes):
    changes = {"webhook_allow": ["127.0.0.1"], **changes}  # the receivers are local
    return in_process(create_app("churn@production", settings.model_copy(update=changes)))


@pytest.fixture(scope="module")
def refusing(trained, tmp_path_factory):
    """One app for the refused payloads, on its own platform database (so no alert is in it)."""
    database = tmp_path_factory.mktemp("refused") / "mloop.db"
    with serve(trained.settings, database_url=f"sqlite:///{database}") as server:
        yield server


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.pop("groupKey"), "groupKey"),
        (lambda p: p.update(status="burning"), "status"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p["alerts"][0].update(labels="x"), "alerts.0.labels"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "'alertname' is missing"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
    ],
)
def test_payloads_that_are_not_alertmanager_v4_are_a_422(refusing, mutate, needle):
    payload = loopkit.alert_payload()
    mutate(payload)
    answer = refusing.post("/alerts/webhook", json=payload)
    listed = refusing.get("/alerts").json()["alerts"]
    assert answer.status_code == 422, answer.text
    assert needle in answer.json()["detail"]
    assert listed == []  # nothing recorded from a refused payload


def test_alerts_are_recorded_once_per_state_and_forwarded_to_slack_and_email(trained):
    with loopkit.WebhookReceiver() as slack, loopkit.SmtpReceiver() as smtp:
        settings = dict(
            alert_slack_webhook_url=slack.url,
            alert_smtp_host="127.0.0.1",
            alert_smtp_port=smtp.port,
            alert_smtp_to=["oncall@example.com"],
        )
        with serve(trained.settings, **settings) as server:
            firing = loopkit.alert_payload("HighPredictionLatency", fingerprint="aa01")
            first = server.post("/alerts/webhook", json=firing)
            repeat = server.post("/alerts/webhook", json=firing)
            resolved = loopkit.alert_payload(
                "HighPredictionLatency", status="resolved", fingerprint="aa01"
            )
            server.post("/alerts/webhook", json=resolved)
            server.app.state.mloop_monitoring.notifier.flush()
            listed = server.get("/alerts").json()["alerts"]
            metrics = server.get("/metrics").text
    assert first.status_code == 200
    assert first.json()["alerts"][0]["recorded"] is True
    assert repeat.json()["alerts"][0]["recorded"] is False  # Alertmanager's repeat: not twice
    assert [(a["alertname"], a["status"]) for a in listed] == [
        ("HighPredictionLatency", "resolved"),
        ("HighPredictionLatency", "firing"),
    ]
    assert len(slack.received) == 3  # every notification is forwarded
    text = json.loads(slack.received[0])["text"]
    assert "FIRING" in text and "HighPredictionLatency" in text and "Feature drift" in text
    assert len(smtp.messages) == 3
    assert smtp.messages[0]["to"] == ["<oncall@example.com>"]
    assert "Subject: [mloop] FIRING: HighPredictionLatency" in smtp.messages[0]["data"]
    sent = loopkit.metric_value(metrics, "mloop_alert_notifications_total", channel="slack")
    assert sent == 3


def test_a_failing_receiver_is_retried_and_counted_without_failing_the_webhook(trained):
    with (
        loopkit.WebhookReceiver(status=500) as broken,
        serve(trained.settings, alert_slack_webhook_url=broken.url) as server,
    ):
        server.app.state.mloop_monitoring.notifier.backoff = 0.01
        alert = loopkit.alert_payload(fingerprint="broken")
        answer = server.post("/alerts/webhook", json=alert)
        server.app.state.mloop_monitoring.notifier.flush()
        metrics = server.get("/metrics").text
    assert answer.status_code == 200
    assert len(broken.received) == 3
    failed = loopkit.metric_value(
        metrics, "mloop_alert_notifications_total", channel="slack", outcome="failed"
    )
    assert failed == 1


def test_retraining_is_skipped_with_a_reason_when_no_data_is_configured(trained):
    with serve(trained.settings) as server:
        alert = loopkit.alert_payload(fingerprint="nodata")
        answer = server.post("/alerts/webhook", json=alert)
        jobs = server.get("/retrain/jobs").json()["jobs"]
    assert answer.json()["alerts"][0]["action"] == (
        "retrain skipped: MLOOP_RETRAIN_DATA is not set"
    )
    assert jobs == []


def test_a_model_without_a_training_config_fails_its_job_with_the_reason(trained, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    with serve(trained.settings, retrain_data=str(data)) as server:
        answer = server.post("/alerts/webhook", json=loopkit.alert_payload(fingerprint="cfg1"))
        server.app.state.mloop_monitoring.retrain.wait_idle(60)
        jobs = server.get("/retrain/jobs").json()["jobs"]
    assert "queued" in answer.json()["alerts"][0]["action"]
    assert jobs[0]["status"] == "failed"
    assert "no config/params.yaml and no mloop.config tag" in jobs[0]["error"]


def test_drift_alert_retrains_a_candidate_once_and_never_touches_production(tmp_path):
    import mlflow

    settings = modelkit.home_settings(tmp_path / "home")
    result, data = loopkit.train_churn_pipeline(settings, tmp_path)
    with serve(settings, retrain_data=str(data)) as server:
        alert = loopkit.alert_payload(labels={"feature_name": "tenure_months"})
        first = server.post("/alerts/webhook", json=alert)
        # The same alert again, and another drift alert of the same model while it runs.
        second = server.post("/alerts/webhook", json=alert)
        other = loopkit.alert_payload(fingerprint="beef", labels={"feature_name": "age"})
        third = server.post("/alerts/webhook", json=other)
        resolved = loopkit.alert_payload(status="resolved")
        fourth = server.post("/alerts/webhook", json=resolved)
        assert server.app.state.mloop_monitoring.retrain.wait_idle(300)
        jobs = server.get("/retrain/jobs").json()["jobs"]
    assert first.json()["alerts"][0]["action"] == "retrain job 1 queued for churn/1"
    assert second.json()["alerts"][0]["action"] is None  # already recorded: no action
    assert third.json()["alerts"][0]["action"].startswith("retrain job 1 already")
    assert fourth.json()["alerts"][0]["action"] is None  # resolved alerts start nothing
    assert len(jobs) == 1 and jobs[0]["status"] == "succeeded", jobs
    client = mlflow.MlflowClient()
    candidate = client.get_model_version_by_alias("churn", "candidate")
    assert str(candidate.version) == jobs[0]["new_version"] == "2"
    assert candidate.tags["mloop.retrained_from"] == result.version
    assert str(client.get_model_version_by_alias("churn", "production").version) == result.version


def test_pending_jobs_are_resumed_when_the_worker_starts(tmp_path):
    settings = modelkit.home_settings(tmp_path / "home")
    result, data = loopkit.train_churn_pipeline(settings, tmp_path)
    database = open_database(settings)
    with database.session() as session:  # what a crash right after the webhook leaves
        session.add(
            RetrainJob(
                status="running",
                model_name="churn",
                model_version=result.version,
                reason="FeatureDriftDetected",
                dedup_key="crashed",
                data=str(data),
            )
        )
    worker = RetrainWorker(settings.model_copy(update={"retrain_data": str(data)}), database)
    worker.start()
    try:
        assert worker.wait_idle(300)
        jobs = worker.jobs()
    finally:
        worker.stop()
    assert jobs[0]["status"] == "succeeded", jobs
    assert jobs[0]["new_version"] == "2"
