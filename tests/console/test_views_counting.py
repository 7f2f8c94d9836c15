"""The Monitoring page counts each logged row once: the slices' counts, summed, give the same
drift verdict as counting the whole window, and the quality chart's accuracy is
`classification_quality`'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mloop.monitoring.quality import classification_quality
from mloop.serving.console import views
from tests.console.conftest import churn_features


@pytest.fixture(scope="module")
def logged() -> list[tuple[datetime, dict]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = churn_features(250, seed=2) + churn_features(251, seed=3, drift=True)
    return [(start + timedelta(seconds=i), row) for i, row in enumerate(rows)]


def test_slice_counts_add_up_to_the_whole_window(profile, logged):
    counted = views.slice_counts(profile, logged, count=4)
    assert [end for end, _ in counted] == [logged[i][0] for i in (125, 250, 375, 500)]
    assert sum(c.rows for _, c in counted) == len(logged)
    assert views.current_drift(profile, logged, counted=counted) == views.current_drift(
        profile, logged
    )
    assert views.slice_counts(profile, []) == []


def test_drift_over_time_is_the_same_from_shared_counts(profile, logged):
    counted = views.slice_counts(profile, logged, count=3)
    shared = views.drift_over_time(profile, logged, counted=counted)
    assert shared == views.drift_over_time(profile, logged, count=3)
    assert len(shared["times"]) == 3 and any(shared["thresholds"])


def test_accuracy_is_classification_qualitys():
    actual = [1, 0, "1", True, 0, 1]
    predicted = [1, 1, 1, True, 0, 0]
    expected = classification_quality(actual, predicted, [None] * 6)["accuracy"]
    assert views.accuracy(actual, predicted) == pytest.approx(expected)
    assert views.accuracy([], []) is None
