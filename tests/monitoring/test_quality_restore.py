"""Restoring the quality gauges at start-up from labels already stored, whatever they hold."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from mloop.monitoring.quality import QualityMonitor, classification_quality
from mloop.settings import Settings
from mloop.store import open_database
from mloop.store.monitoring import FeedbackRecord


def test_labels_equal_as_values_but_not_as_text_do_not_break_the_metrics():
    # True == 1 in Python but "True" != "1": stored before labels were checked
    metrics = classification_quality([True, 1, 0, 1], [0, 1, 0, 1], [0.6, 0.7, 0.8, 0.9])
    assert metrics["accuracy"] == 0.75
    metrics = classification_quality([1.0, 1, 0, 0], [1, 1, 0, 0], [0.9, 0.9, 0.8, 0.8])
    assert 0 <= metrics["accuracy"] <= 1


def test_one_version_whose_labels_fail_does_not_stop_the_others(tmp_path):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'q.db'}")
    database = open_database(settings)
    now = datetime.now(UTC)
    rows = [("a1", "2", True, 0), ("a2", "2", 1, 1), ("a3", "2", 0, 0)]
    rows += [("b1", "1", 1, 1), ("b2", "1", 0, 1)]
    with database.session() as session:
        session.add_all(
            FeedbackRecord(
                prediction_id=pid,
                model_name="churn",
                model_version=version,
                actual=actual,
                prediction=prediction,
                probability=0.8,
                predicted_at=now,
            )
            for pid, version, actual, prediction in rows
        )
    monitor = QualityMonitor(
        CollectorRegistry(), settings=settings, training_metrics=lambda name, version: ({}, None)
    )
    monitor.database = database
    reports = {r.model_version: r for r in monitor.refresh_all()}
    assert set(reports) == {"1", "2"}
    assert reports["1"].metrics["accuracy"] == 0.5
