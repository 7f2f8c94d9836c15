"""The monitoring loop end to end: a model trained by mloop.pipeline serves drifted traffic,
the live drift gauge crosses its threshold, the alert Alertmanager would send arrives at the
webhook, and the retraining job registers a new candidate version (never Production)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import loopkit, modelkit

pytestmark = pytest.mark.slow


def drift_gauges(text: str) -> dict[str, tuple[float, float]]:
    """feature_name -> (score, threshold) from /metrics."""
    values: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("feature_drift_score", "feature_drift_threshold"):
            for sample in family.samples:
                values.setdefault(sample.labels["feature_name"], {})[family.name] = sample.value
    return {
        name: (v["feature_drift_score"], v["feature_drift_threshold"])
        for name, v in values.items()
        if len(v) == 2
    }


def test_drift_alert_retrains_a_candidate(tmp_path):
    import mlflow

    settings = modelkit.home_settings(tmp_path / "home")
    result, data = loopkit.train_churn_pipeline(settings, tmp_path, rows=1500)
    settings = settings.model_copy(
        update={"retrain_data": str(data), "drift_min_rows": 200, "drift_interval_seconds": 0.2}
    )
    with (
        ServerThread(create_app("churn@production", settings)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        calm = loopkit.churn_rows(300, seed=11)
        loopkit.predict_ids(http, calm)
        report = http.get("/monitor/drift").json()
        assert report["status"] == "ok" and report["dataset_drift"] is False
        calm_gauges = drift_gauges(http.get("/metrics").text)
        assert calm_gauges["monthly_charges"][0] < calm_gauges["monthly_charges"][1]

        shifted = loopkit.churn_rows(3000, seed=12, drift=True)
        for start in range(0, len(shifted), 500):
            loopkit.predict_ids(http, shifted[start : start + 500])
        assert http.get("/monitor/drift").json()["rows"] == 3300
        gauges = drift_gauges(http.get("/metrics").text)
        crossed = sorted(name for name, (score, limit) in gauges.items() if score >= limit)
        assert "monthly_charges" in crossed and "payment_method" in crossed, gauges

        # What Alertmanager posts once FeatureDriftDetected has fired for its `for:` period.
        alert = loopkit.alert_payload(
            "FeatureDriftDetected",
            fingerprint="e2e0drift",
            labels={
                "feature_name": crossed[0],
                "model_version": result.version,
                "action": "retrain",
                "job": "mloop",
            },
        )
        answer = http.post("/alerts/webhook", json=alert)
        assert answer.status_code == 200, answer.text
        assert answer.json()["alerts"][0]["action"].startswith("retrain job 1 queued")
        assert server.app.state.mloop_monitoring.retrain.wait_idle(300)
        jobs = http.get("/retrain/jobs").json()["jobs"]
        served = http.get("/model/info").json()["version"]

    assert jobs[0]["status"] == "succeeded", jobs
    client = mlflow.MlflowClient()
    candidate = client.get_model_version_by_alias("churn", "candidate")
    assert str(candidate.version) == jobs[0]["new_version"] == "2"
    assert str(client.get_model_version_by_alias("churn", "production").version) == "1"
    assert served == result.version  # the server keeps serving Production
