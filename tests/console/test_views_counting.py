"""The Monitoring page counts each logged row once: the slices' counts, summed, give the same
drift verdict as counting the whole window, and the quality chart's accuracy is
`classification_quality`'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mloop.data import generate_churn
from mloop.monitoring.quality import classification_quality
from mloop.serving.console import views
from mloop.stats.profile import ReferenceProfile


def _rows(rows: int, seed: int, drift: bool = False) -> list[dict]:
    frame = generate_churn(rows, seed=seed, drift=drift).drop(columns=["customer_id", "churn"])
    return frame.to_dict(orient="records")


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    frame = generate_churn(600, seed=1).drop(columns=["customer_id", "churn"])
    return ReferenceProfile.from_frame(frame)


@pytest.fixture(scope="module")
def logged() -> list[tuple[datetime, dict]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = _rows(250, seed=2) + _rows(251, seed=3, drift=True)
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
