"""The data behind the console's Deployments, Monitoring and Jobs pages (no HTML): live numbers
from real Prometheus metrics, drift and quality over time, deployments, predictions, jobs."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mloop.deploy.service import DeploymentService
from mloop.errors import NotFoundError, UserError, ValidationError
from mloop.jobs.queue import JobQueue
from mloop.serving.console import variant_metrics, views
from mloop.serving.metrics import ServingMetrics
from mloop.store import PredictionRecord, open_database
from mloop.store.monitoring import FeedbackRecord
from tests.console.conftest import churn_features
from tests.support import deploykit


def timed(rows: list[dict]) -> list[tuple[datetime, dict]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [(start + timedelta(seconds=i), row) for i, row in enumerate(rows)]


def test_variant_numbers_come_from_the_metrics_exposition():
    metrics = ServingMetrics()
    for seconds in (0.002, 0.004, 0.004, 0.2):
        metrics.observe("2", seconds, None, variant="shop/canary")
    metrics.count("2", "success", rows=9, variant="shop/canary")
    metrics.count("2", "error", rows=1, variant="shop/canary")
    metrics.count("2", "invalid", rows=5, variant="shop/canary")  # the client's fault
    metrics.count("1", "success", rows=3, variant="other-deployment/canary")
    found = variant_metrics.read_variants(metrics, "shop")
    assert set(found) == {"canary"}
    canary = found["canary"]
    assert canary.requests == 15 and canary.errors == 1
    assert canary.error_rate == pytest.approx(1 / 15)
    assert 2.5 <= canary.quantile_ms(0.5) <= 5  # inside the (2.5 ms, 5 ms] bucket
    assert 100 <= canary.quantile_ms(0.99) <= 250
    assert variant_metrics.VariantNumbers().quantile_ms(0.5) is None


def _totals(requests: float, errors: float = 0.0, fast: float = 0.0, slow: float = 0.0):
    """Totals as /metrics holds them: `fast` answers in <= 5 ms, `slow` in (0.1 s, 0.25 s]."""
    both = fast + slow
    buckets = {0.005: fast, 0.1: fast, 0.25: both, math.inf: both}
    return variant_metrics.VariantNumbers(requests, errors, buckets)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_live_window_counts_the_increase_over_the_last_five_minutes():
    clock = Clock()
    window = variant_metrics.LiveWindow(clock=clock)
    first = window.observe("d", "a", _totals(100, errors=10, slow=100))
    assert first.label == "since start" and first.per_second is None
    assert first.counted.requests == 100 and first.counted.error_rate == pytest.approx(0.1)
    clock.now += 0.5  # too soon for a second reading: still since start
    assert window.observe("d", "a", _totals(101, slow=101, errors=10)).label == "since start"
    clock.now += 59.5
    live = window.observe("d", "a", _totals(160, errors=13, fast=50, slow=110))
    assert live.label == "last 60 s" and live.total_requests == 160
    assert live.per_second == pytest.approx(1.0)  # 60 more requests in 60 s
    assert live.counted.error_rate == pytest.approx(3 / 60)
    assert live.counted.quantile_ms(0.5) <= 5  # 50 of the 60 new answers were fast
    assert 100 <= first.counted.quantile_ms(0.5) <= 250  # since start most were slow
    for _ in range(5):  # no traffic since
        clock.now += 60
        quiet = window.observe("d", "a", _totals(160, errors=13, fast=50, slow=110))
    assert quiet.label == "last 5 min"  # from the reading at 1060 s: 1000 s is outside now
    assert quiet.per_second == 0.0  # no traffic for 5 min: a rate of 0, nothing divided by 0
    assert quiet.counted.error_rate is None and quiet.counted.quantile_ms(0.99) is None


def test_live_window_a_restarted_worker_counts_from_zero():
    clock = Clock()
    window = variant_metrics.LiveWindow(clock=clock)
    window.observe("d", "a", _totals(500, errors=5, fast=500))
    clock.now += 10
    window.observe("d", "a", _totals(520, errors=5, fast=520))
    clock.now += 10  # the worker restarted: its counters start again from 0
    live = window.observe("d", "a", _totals(30, errors=3, slow=30))
    assert live.counted.requests == 20 + 30 and live.counted.errors == 3
    assert live.per_second == pytest.approx(50 / 20)
    assert 100 <= live.counted.quantile_ms(0.99) <= 250
    restarted = variant_metrics.increase(_totals(520, fast=520), _totals(30, slow=30))
    assert restarted.requests == 30 and restarted.buckets[0.005] == 0


def test_live_window_keeps_a_bounded_history_per_variant():
    clock = Clock()
    window = variant_metrics.LiveWindow(window=60, clock=clock)
    for n in range(1000):  # a view every 0.25 s for 250 s
        clock.now += 0.25
        live = window.observe("d", "a", _totals(n))
    kept = window._readings[("d", "a")]
    assert len(kept) <= 60 / 1 + 2 and kept[1].at >= clock.now - 60
    assert live.label == "last 60 s" and live.per_second == pytest.approx(4.0, rel=0.05)
    last = kept[-1]
    clock.now += 600  # nobody looked for 10 min: the reading just before the window counts
    late = window.observe("d", "a", _totals(1999))
    assert late.label == "last 10 min" and late.seconds == clock.now - last.at
    assert late.counted.requests == 1999 - last.totals.requests
    other = window.observe("d", "b", _totals(7))  # each variant has its own readings
    assert other.label == "since start" and other.counted.requests == 7


def test_slices_are_consecutive_and_cover_everything():
    assert views.slices(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert views.slices([1, 2], 6) == [[1], [2]]
    assert views.slices([], 6) == []


def test_drift_over_time_rises_when_the_traffic_drifts(profile):
    rows = timed(churn_features(300, seed=2) + churn_features(300, seed=3, drift=True))
    timeline = views.drift_over_time(profile, rows, count=2)
    assert len(timeline["times"]) == 2
    drifted = [
        name
        for name, (before, after) in timeline["series"].items()
        if after is not None and before is not None and after > timeline["thresholds"][name]
    ]
    assert drifted, timeline
    current = views.current_drift(profile, rows[300:])
    assert current["rows"] == 300 and current["source"].startswith("latest 300")
    assert any(f["drift"] for f in current["features"])
    assert views.current_drift(profile, [])["features"] == []


def test_feature_histogram_uses_the_reference_bins(profile):
    rows = timed(churn_features(200, seed=4))
    feature = next(iter(profile.features))
    histogram = views.feature_histogram(profile, rows, feature)
    assert len(histogram["labels"]) == len(histogram["reference"]) == len(histogram["current"])
    assert sum(histogram["current"]) <= 200 and sum(histogram["reference"]) > 0
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        views.feature_histogram(profile, rows, "nope")


def test_form_values_are_checked():
    assert views.parse_share("25") == 25.0
    for bad in ("abc", "-1", "101", "nan", ""):
        with pytest.raises(ValidationError):
            views.parse_share(bad)
    good = str(uuid.uuid4())
    assert views.parse_prediction_id(f" {good} ") == good
    with pytest.raises(UserError, match="is not a prediction id"):
        views.parse_prediction_id("<b>nope</b>")


def test_deployments_detail_report_history_and_actions(mloop_home):
    deploykit.register_versions(mloop_home)
    service = DeploymentService(mloop_home)
    spec = {
        "name": "churn-ab",
        "policy": "ab",
        "variants": [
            {"name": "control", "model": "churn@production", "weight": 80},
            {"name": "challenger", "model": "churn/2", "weight": 20},
        ],
    }
    service.apply(spec, "alice")
    service.shift("churn-ab", "challenger", 40, "bob")
    listed = views.deployment_list(service)
    assert [(d["name"], d["policy"], d["status"]) for d in listed] == [("churn-ab", "ab", "ok")]
    shares = {v["variant"]: v["share"] for v in listed[0]["variants"]}
    assert shares == {"control": 60, "challenger": 40}
    detail = views.deployment_detail(service, "churn-ab")
    assert [r["revision"] for r in detail["history"]] == [2, 1]  # newest first
    assert detail["report"]["recommendation"]["verdict"] == "not yet significant"
    assert detail["actions"] == {"promote": True, "switch": False, "shift": True, "rollback": True}
    with pytest.raises(NotFoundError):
        views.deployment_detail(service, "nope")


def test_prediction_lookup_and_quality_over_time(mloop_home):
    database = open_database(mloop_home)
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(12)]
    with database.session() as session:
        for n, pid in enumerate(ids):
            session.add(
                PredictionRecord(
                    id=pid,
                    created_at=now + timedelta(milliseconds=n),
                    model_name="churn",
                    model_version="1",
                    input_sha256="0" * 64,
                    features={"tenure": n},
                    prediction=1,
                    probability=0.8,
                    latency_ms=1.5,
                )
            )
            session.add(
                FeedbackRecord(
                    prediction_id=pid,
                    received_at=now + timedelta(seconds=n),
                    model_name="churn",
                    model_version="1",
                    actual=1 if n < 6 else 0,  # right, then wrong
                    prediction=1,
                    probability=0.8,
                    predicted_at=now,
                )
            )
        session.commit()
    found = views.prediction(database, ids[0])
    assert (found["model"], found["version"], found["actual"]) == ("churn", "1", 1)
    with pytest.raises(NotFoundError, match="no logged prediction"):
        views.prediction(database, str(uuid.uuid4()))
    quality = views.quality_over_time(database, "churn", "1", "classification")
    assert quality["labels"] == 12 and quality["metric"] == "accuracy"
    assert quality["values"][0] == 1.0 and quality["values"][-1] == 0.0
    logged = views.logged_features(database, "churn", "1")
    assert [f["tenure"] for _, f in logged] == list(range(12))


def test_jobs_list_and_detail(mloop_home):
    queue = JobQueue.from_settings(mloop_home)
    job = queue.submit("predict", payload={"instances": [{"a": 1}]}, rows=1, model_uri="m:/1")
    listed = views.job_list(queue)
    assert [j["job_id"] for j in listed["jobs"]] == [job.id]
    assert listed["counts"]["queued"] == 1
    detail = views.job_detail(queue, job.id)
    assert detail["cancellable"] and detail["status"] == "queued"
    with pytest.raises(NotFoundError):
        views.job_detail(queue, "nope")
