"""Drift statistics against scipy's reference implementations, and the live `compare` path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from mloop.errors import ValidationError
from mloop.stats import measures as stats
from mloop.stats.binned import compare
from mloop.stats.profile import ReferenceProfile

RNG = np.random.default_rng(42)


def test_jensen_shannon_matches_scipy():
    p, q = np.array([10, 20, 30, 0]), np.array([5, 5, 40, 10])
    assert stats.jensen_shannon(p, q) == pytest.approx(distance.jensenshannon(p, q))
    assert stats.jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)


def test_psi_floors_empty_bins_like_evidently():
    p, q = np.array([50, 50, 0]), np.array([40, 40, 20])
    ps, qs = np.array([0.5, 0.5, 1e-4]), np.array([0.4, 0.4, 0.2])
    assert stats.psi(p, q) == pytest.approx(np.sum((qs - ps) * np.log(qs / ps)))
    assert stats.psi(p, p) == pytest.approx(0.0, abs=1e-9)


def test_chi_squared_matches_scipy_and_unseen_is_zero():
    ref, cur = np.array([300, 500, 200]), np.array([40, 40, 20])
    expected = sps.chisquare(cur, ref * cur.sum() / ref.sum()).pvalue
    assert stats.chi_squared_p(ref, cur) == pytest.approx(expected)
    assert stats.chi_squared_p(np.array([10, 0]), np.array([5, 1])) == 0.0


@pytest.mark.parametrize("n,m", [(1000, 333), (50, 50), (7, 300), (1, 9), (400, 100), (3, 2)])
def test_exact_wasserstein_matches_scipy(n, m):
    a = np.sort(np.round(RNG.normal(size=n), 1))  # rounding makes ties
    b = np.sort(np.round(RNG.normal(0.3, 1.2, size=m), 1))
    assert stats.wasserstein_sorted(a, b) == pytest.approx(sps.wasserstein_distance(a, b))


def test_binned_wasserstein_approaches_exact_with_fine_bins():
    a, b = RNG.normal(size=20_000), RNG.normal(0.5, 1, size=5_000)
    edges = np.linspace(-6, 7, 400)
    ref, cur = np.histogram(a, edges)[0], np.histogram(b, edges)[0]
    binned = stats.binned_wasserstein(edges, ref, cur)
    assert binned == pytest.approx(sps.wasserstein_distance(a, b), rel=0.02)
    assert stats.normed(1.0, 0.0) == 1000.0  # the 0.001 floor on the reference std


def test_ks_and_z_tests():
    a, b = RNG.normal(size=300), RNG.normal(1, 1, size=300)
    assert stats.ks_p(a, b) == pytest.approx(sps.ks_2samp(a, b).pvalue)
    assert stats.ks_p(a, b) < 1e-6
    # 50% vs 70% of 200 each: z = -0.2 / sqrt(0.6 * 0.4 * 0.01) = -4.08
    assert stats.z_test_p(100, 200, 140, 200) == pytest.approx(2 * sps.norm.sf(4.0825), rel=1e-3)
    assert stats.z_test_p(5, 5, 7, 7) == 1.0


def test_sorted_quantiles_match_numpy():
    x = np.sort(RNG.normal(size=1001))
    q = np.array([0, 0.013, 0.5, 0.99, 1])
    assert stats.sorted_quantiles(x, q) == pytest.approx(np.quantile(x, q))


# -- compare: profile vs counts --------------------------------------------------------------


def frame(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1, n),
            "y": rng.exponential(1 + shift, n),
            "c": rng.choice(
                ["a", "b", "c"], n, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]
            ),
        }
    )


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    ref = frame(5000)
    return ReferenceProfile.from_frame(ref, predictions=ref["c"], probabilities=RNG.random(5000))


def test_same_distribution_does_not_drift(profile):
    cur = frame(2000, seed=1)
    result = compare(profile, profile.counts(cur, predictions=cur["c"]))
    assert not result.dataset_drift and result.number_of_drifted_columns == 0
    x = result.column("x")
    assert x.statistic == "wasserstein_normed" and x.threshold == 0.1
    assert set(x.statistics) == {"psi", "jensen_shannon", "wasserstein_normed", "chi_squared"}
    assert result.column("c").statistic == "jensen_shannon"
    assert result.prediction.statistic == "jensen_shannon" and result.prediction_drift_score < 0.1


def test_shifted_distribution_drifts(profile):
    cur = frame(2000, shift=1.0, seed=1)
    result = compare(profile, profile.counts(cur, predictions=cur["c"]))
    assert result.dataset_drift and result.share_of_drifted_columns == 1.0
    x = result.column("x")
    # Exact normalised Wasserstein is about 1.0 (a shift of one std); bins land close.
    assert x.value == pytest.approx(1.0, rel=0.1)
    assert result.prediction.drift_detected
    assert result.scores()["x"] == x.value


def test_out_of_range_shift_is_not_underestimated(profile):
    cur = pd.DataFrame({"x": np.full(100, 50.0), "y": np.ones(100), "c": ["a"] * 100})
    x = compare(profile, profile.counts(cur)).column("x")
    assert x.out_of_range == 100
    assert x.value >= 49  # the mean shift bounds the distance from below


def test_small_reference_uses_chi_squared():
    ref = frame(500)
    small = ReferenceProfile.from_frame(ref)
    result = compare(small, small.counts(frame(300, shift=1.0, seed=2)))
    assert all(c.statistic == "chi_squared" and c.threshold == 0.05 for c in result.columns)
    assert result.column("x").drift_detected and result.column("x").value < 0.05
    assert result.column("x").score == pytest.approx(1 - result.column("x").value)


def test_method_and_threshold_overrides(profile):
    window = profile.counts(frame(1000, seed=3))
    result = compare(profile, window, method="psi", threshold=0.0)
    assert all(c.statistic == "psi" and c.drift_detected for c in result.columns)
    # Wasserstein is not defined on categories: those columns keep their default.
    result = compare(profile, window, method="wasserstein")
    assert result.column("c").statistic == "jensen_shannon"
    assert result.column("x").statistic == "wasserstein_normed"


def test_bad_method_and_mismatched_window_are_validation_errors(profile):
    window = profile.counts(frame(10))
    with pytest.raises(ValidationError, match="unknown drift method 'magic'"):
        compare(profile, window, method="magic")
    with pytest.raises(ValidationError, match="raw samples"):
        compare(profile, window, method="ks")
    del window.features["x"]
    with pytest.raises(ValidationError, match="'x'"):
        compare(profile, window)


def test_empty_window_has_no_verdict_and_strict_json(profile):
    result = compare(profile, profile.empty_counts())
    assert all(c.value is None and not c.drift_detected for c in result.columns)
    assert not result.dataset_drift and result.scores() == {}
    body = result.to_dict()
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["columns"]["x"]["missing_rate"] == {"reference": 0.0, "current": 0.0}
