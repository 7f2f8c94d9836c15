"""The A/B report: attribution by version and revision window, Wilson intervals, the z-test,
and the recommendation, on real prediction-log and feedback rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mloop.deploy import report
from mloop.deploy.records import Revision
from mloop.deploy.report import build_report, two_proportion_z, wilson
from mloop.deploy.report_html import render
from mloop.deploy.spec import parse_spec
from mloop.store import open_database
from mloop.store.models import PredictionRecord
from mloop.store.monitoring import FeedbackRecord


def test_wilson_matches_the_textbook_values():
    low, high = wilson(81, 263)  # Wilson (1927) worked example, rounded to 4 places
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73


def test_two_proportion_z_test():
    z, p = two_proportion_z(50, 100, 70, 100)
    assert z == pytest.approx(2.8868, abs=1e-3) and p == pytest.approx(0.00389, abs=1e-4)
    assert two_proportion_z(0, 0, 5, 10) == (0.0, 1.0)
    assert two_proportion_z(10, 10, 10, 10) == (0.0, 1.0)


def _log(database, version, rows, correct, *, at, labelled=None, latency=10.0, said=1, wrong=0):
    """`rows` predictions (`said`) by churn/`version` at `at`; the first `labelled` get labels,
    the first `correct` of them right (`said`), the others `wrong`."""
    labelled = rows if labelled is None else labelled
    predictions, labels = [], []
    for i in range(rows):
        pid = str(uuid.uuid4())
        predictions.append(
            PredictionRecord(
                id=pid,
                created_at=at,
                model_name="churn",
                model_version=version,
                input_sha256="0" * 64,
                prediction=said,
                probability=0.7,
                latency_ms=latency + i % 5,
            )
        )
        if i < labelled:
            labels.append(
                FeedbackRecord(
                    prediction_id=pid,
                    model_name="churn",
                    model_version=version,
                    actual=said if i < correct else wrong,
                    prediction=said,
                    predicted_at=at,
                )
            )
    with database.session() as session:
        session.add_all(predictions)
        session.flush()
        session.add_all(labels)


def ab(control=50):
    return {
        "name": "churn-ab",
        "policy": "ab",
        "variants": [
            {"name": "control", "model": "churn@production", "weight": control},
            {"name": "challenger", "model": "churn/2", "weight": 100 - control},
        ],
    }


def _report(service, **kwargs):
    _, spec = service.get("churn-ab")
    return build_report(service.records.database, spec, service.history("churn-ab"), **kwargs)


def test_a_better_challenger_is_recommended_for_promotion(service, registry_home):
    service.apply(ab(), "alice")
    database = open_database(registry_home)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _log(database, "1", 400, 280, at=soon)  # 70%
    _log(database, "2", 400, 340, at=soon, latency=20.0)  # 85%
    _log(database, "2", 5, 5, at=soon - timedelta(days=1))  # before the deployment: not counted
    report = _report(service)
    rows = {v["variant"]: v for v in report["variants"]}
    assert rows["control"]["requests"] == 400 and rows["control"]["versions"] == ["1"]
    assert rows["challenger"]["accuracy"] == pytest.approx(0.85)
    low, high = rows["challenger"]["accuracy_ci95"]
    assert low < 0.85 < high
    assert rows["challenger"]["latency_ms"]["p95"] > rows["control"]["latency_ms"]["p95"]
    (comparison,) = report["comparisons"]
    assert comparison["verdict"] == "promote" and comparison["p_value"] < 1e-6
    assert report["recommendation"]["verdict"] == "promote challenger"
    html = render(report)
    assert "promote challenger" in html and "<svg" in html and "<script" not in html


def test_worse_challenger_keeps_control_and_few_labels_are_not_significant(service, registry_home):
    service.apply(ab(), "alice")
    database = open_database(registry_home)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _log(database, "1", 300, 270, at=soon)
    _log(database, "2", 300, 180, at=soon)
    assert _report(service)["recommendation"]["verdict"] == "keep control"
    few = _report(service, min_labels=1000)
    assert few["recommendation"]["verdict"] == "not yet significant"
    assert "1000 needed" in few["recommendation"]["why"]


def test_no_ground_truth_is_not_significant(service, registry_home):
    service.apply(ab(), "alice")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _log(open_database(registry_home), "2", 20, 0, at=soon, labelled=0)
    report = _report(service, live={"challenger": {"requests": 21, "errors": 1}})
    rows = {v["variant"]: v for v in report["variants"]}
    assert rows["challenger"]["requests"] == 20 and rows["challenger"]["errors"] == 1
    assert rows["challenger"]["accuracy"] is None and rows["control"]["requests"] == 0
    assert report["recommendation"]["verdict"] == "not yet significant"
    assert "No ground truth yet" in render(report)


def test_counts_are_exact_and_latency_quantiles_come_from_the_newest(
    service, registry_home, monkeypatch
):
    monkeypatch.setattr(report, "LATENCY_SAMPLE", 50)  # a small sample, to see the bound
    service.apply(ab(), "alice")
    for share in (10, 20, 30):  # revisions that keep the versions: one span per variant
        service.shift("churn-ab", "challenger", share, "bob")
    spans = report._spans(service.history("churn-ab"))
    assert [len(spans[v]) for v in ("control", "challenger")] == [1, 1]
    database = open_database(registry_home)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _log(database, "2", 300, 240, at=soon, latency=10.0)
    _log(database, "2", 50, 50, at=soon + timedelta(seconds=1), latency=50.0)
    rows = {v["variant"]: v for v in _report(service)["variants"]}
    challenger = rows["challenger"]
    assert challenger["requests"] == 350 and challenger["labelled"] == 350
    assert challenger["accuracy"] == pytest.approx(290 / 350)
    assert challenger["latency_ms"]["mean"] == pytest.approx((300 * 12 + 50 * 52) / 350)
    assert 50 <= challenger["latency_ms"]["p50"] <= 54  # the 50 newest only


def test_the_sql_counts_are_the_same_on_sqlite_and_postgres(database):
    start = datetime.now(UTC) - timedelta(minutes=1)
    resolved = {
        "control": {"name": "churn", "version": "1"},
        "challenger": {"name": "churn", "version": "2"},
    }
    history = [Revision("churn-ab", 1, start, "alice", "apply", None, resolved, None, None)]
    at = start + timedelta(seconds=1)
    _log(database, "1", 40, 30, at=at, labelled=35)  # int labels
    _log(database, "2", 40, 36, at=at, said="yes", wrong="no")  # string labels (JSON text)
    result = build_report(database, parse_spec(ab()), history, min_labels=10)
    rows = {v["variant"]: v for v in result["variants"]}
    assert (rows["control"]["requests"], rows["control"]["labelled"]) == (40, 35)
    assert rows["control"]["accuracy"] == pytest.approx(30 / 35)
    assert rows["challenger"]["accuracy"] == pytest.approx(36 / 40)
    assert rows["control"]["latency_ms"]["mean"] == pytest.approx(12.0)
