"""Live drift in a real server: windows by count and time, gauges, counters, both endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mloop.monitoring.live import LiveDriftMonitor, SlidingWindow, positive_scores
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.serving.app import create_app
from mloop.stats.profile import ReferenceProfile
from tests.support import loopkit, modelkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("live-home"))
    settings = settings.model_copy(update={"drift_min_rows": 50, "drift_interval_seconds": 0.2})
    return loopkit.train_with_profile(settings)


def drifted(frame):
    shifted = frame.copy()
    shifted["tenure"] = shifted["tenure"] + 150.0  # far beyond the training range
    shifted["plan"] = "enterprise"  # a category training never saw
    return shifted


def test_the_window_keeps_the_latest_rows_by_count_and_by_age():
    frame, _ = modelkit.make_frame(200)
    profile = ReferenceProfile.from_frame(frame)
    window = SlidingWindow(profile, max_rows=100, max_seconds=60.0)
    for step in range(20):  # 20 batches of 10 rows, one second apart
        window.add(profile.counts(frame.iloc[step * 10 : step * 10 + 10]), now=float(step))
    assert 100 <= window.counts().rows < 110
    assert window.seen_rows == 200
    window.expire(now=19.0 + 61.0)  # a minute later every bucket is too old
    assert window.counts().rows == 0
    # Merged counts equal counting the same rows at once (counts on shared edges add up).
    fresh = SlidingWindow(profile, max_rows=10_000, max_seconds=60.0)
    fresh.add(profile.counts(frame.iloc[:50]), now=0.0)
    fresh.add(profile.counts(frame.iloc[50:120]), now=1.0)
    together = profile.counts(frame.iloc[:120])
    assert np.array_equal(
        fresh.counts().features["tenure"].counts, together.features["tenure"].counts
    )


def test_the_listener_never_blocks_a_full_queue_drops_and_counts():
    registry = CollectorRegistry()
    monitor = LiveDriftMonitor(registry, lambda n, v: (None, None), max_queue=1)
    batch = PredictionBatch("churn", "1", datetime.now(UTC), ["a", "b"], [{}, {}], [0, 1],
                            [0.6, 0.7], 1.0)  # fmt: skip
    monitor(batch, None)
    monitor(batch, None)  # the thread is not started: the queue is full
    assert registry.get_sample_value("mloop_drift_dropped_rows_total") == 2


def test_binary_scores_are_the_positive_class_probability():
    scores = positive_scores([1, 0, 1], [0.9, 0.8, None], [0, 1])
    assert scores[:2] == pytest.approx([0.9, 0.2]) and np.isnan(scores[2])
    assert positive_scores(["a"], [0.7], ["a", "b", "c"]) == pytest.approx([0.7])
    assert positive_scores([1], [None], [0, 1]) is None


def test_drifted_traffic_moves_the_gauges_and_counters(trained):
    with in_process(create_app("churn@production", trained.settings)) as server:
        calm = modelkit.json_rows(trained.frame.sample(120, random_state=1))
        loopkit.predict_ids(server, calm)
        report = server.get("/monitor/drift").json()
        assert report["status"] == "ok" and report["rows"] == 120
        assert report["columns"]["tenure"]["drift_detected"] is False
        assert report["window"]["max_rows"] == trained.settings.drift_window_rows
        shifted = modelkit.json_rows(
            drifted(trained.frame.sample(400, replace=True, random_state=2))
        )
        for start in range(0, 400, 100):
            loopkit.predict_ids(server, shifted[start : start + 100])
        report = server.get("/monitor/drift").json()
        text = server.get("/metrics").text
    assert report["rows"] == 520
    assert report["columns"]["tenure"]["drift_detected"] is True
    assert report["columns"]["tenure"]["out_of_range"] == 400 - sum(
        r["tenure"] is None for r in shifted
    )
    assert report["columns"]["plan"]["unseen"] == 400
    version = trained.version
    score = loopkit.metric_value(text, "feature_drift_score", feature_name="tenure",
                                 model_version=version)  # fmt: skip
    threshold = loopkit.metric_value(text, "feature_drift_threshold", feature_name="tenure",
                                     model_version=version)  # fmt: skip
    assert score >= threshold
    missing = sum(r["tenure"] is None for r in calm + shifted)
    assert loopkit.metric_value(text, "missing_features_total", feature_name="tenure") == missing
    assert loopkit.metric_value(text, "outliers_total", feature_name="plan") == 400
    assert loopkit.metric_value(text, "drift_window_rows", model_version=version) == 520
    assert loopkit.metric_value(text, "prediction_drift_score", model_version=version) is not None


def test_post_monitor_drift_reports_on_the_rows_sent(trained):
    with in_process(create_app("churn@production", trained.settings)) as server:
        same = modelkit.json_rows(trained.frame)
        shifted = modelkit.json_rows(drifted(trained.frame))
        calm = server.post("/monitor/drift", json={"instances": same})
        moved = server.post("/monitor/drift", json={"instances": shifted})
        wrong = {**same[0], "tenure": "x"}
        bad = server.post("/monitor/drift", json={"instances": [same[1], wrong]})
        empty = server.post("/monitor/drift", json={"instances": []})
        window = server.get("/monitor/drift").json()
    assert calm.status_code == 200 and calm.json()["dataset_drift"] is False
    body = moved.json()
    assert body["columns"]["tenure"]["drift_detected"] and body["columns"]["plan"]["unseen"] > 0
    assert body["current_rows"] == len(shifted)
    assert bad.status_code == 422
    assert "row 1" in bad.json()["detail"] and "tenure" in bad.json()["detail"]
    assert empty.status_code == 422
    assert window["status"] == "no_traffic"  # posted rows are not live traffic


def test_a_model_without_a_profile_says_so(tmp_path):
    settings = modelkit.home_settings(tmp_path)
    trained = modelkit.train_and_register(settings)  # logs no reference profile
    with in_process(create_app("churn@production", settings)) as server:
        loopkit.predict_ids(server, modelkit.json_rows(trained.frame.head(5)))
        live = server.get("/monitor/drift").json()
        posted = server.post(
            "/monitor/drift",
            json={"instances": modelkit.json_rows(trained.frame.head(5))},
        )
    assert live["status"] == "no_profile" and "no reference profile" in live["reason"]
    assert posted.status_code == 404 and "no reference profile" in posted.json()["detail"]


def test_monitoring_off_keeps_serving(trained):
    settings = trained.settings.model_copy(update={"monitoring": False})
    with in_process(create_app("churn@production", settings)) as server:
        loopkit.predict_ids(server, modelkit.json_rows(trained.frame.head(5)))
        answer = server.get("/monitor/drift")
        text = server.get("/metrics").text
    assert answer.status_code == 404 and "MLOOP_MONITORING" in answer.json()["hint"]
    assert "feature_drift_score" not in text
