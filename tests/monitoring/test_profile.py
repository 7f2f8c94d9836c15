"""Reference profiles: bins from quantiles, counts on shared bins, JSON, merging, training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mloop.data import generate_churn, write_table
from mloop.errors import ValidationError
from mloop.registry.profile_store import PROFILE_ARTIFACT, load_profile
from mloop.stats.columns import CategoricalProfile, NumericProfile
from mloop.stats.counts import FeatureCounts, WindowCounts
from mloop.stats.profile import ReferenceProfile

KINDS = {"signup_date": "date"}


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate_churn(3000, seed=3).drop(columns=["customer_id", "churn"])


@pytest.fixture(scope="module")
def profile(churn: pd.DataFrame) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    probs = rng.random((len(churn), 2))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.where(probs[:, 1] > 0.5, "yes", "no")
    return ReferenceProfile.from_frame(churn, predictions=labels, probabilities=probs, kinds=KINDS)


def test_numeric_bins_come_from_reference_quantiles(profile, churn):
    age = profile.features["age"]
    assert isinstance(age, NumericProfile)
    assert age.edges == sorted(age.edges) and len(set(age.edges)) == len(age.edges)
    assert age.edges[0] == pytest.approx(churn["age"].min())
    assert age.edges[-1] == pytest.approx(churn["age"].max())
    assert 10 <= len(age.counts) <= 20
    assert sum(age.counts) == age.count == churn["age"].notna().sum()
    assert age.missing == churn["age"].isna().sum()
    assert age.mean == pytest.approx(churn["age"].mean())
    assert age.quantiles["p50"] == pytest.approx(churn["age"].median())
    # Equal-mass bins: the deciles hold about a tenth each.
    assert max(age.counts) <= 0.12 * age.count


def test_categorical_profile_keeps_top_k_and_other():
    values = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None] * 2)
    prof = CategoricalProfile.from_values("x", values.astype("string"), top_k=2)
    assert prof.categories == ["a", "b"]
    assert prof.counts == [5, 3, 3]  # a, b, __other__ (c, c, d)
    assert prof.truncated and prof.missing == 2 and prof.count == 11


def test_counting_the_reference_gives_the_reference_counts(profile, churn):
    window = profile.counts(churn)
    assert window.rows == len(churn)
    for name, prof in profile.features.items():
        counts = window.features[name]
        assert counts.counts.tolist() == prof.counts, name
        assert counts.missing == prof.missing
        assert counts.outside == 0


def test_missing_out_of_range_and_unseen_are_counted(profile):
    frame = pd.DataFrame(
        {
            "age": [None, 10_000.0, -5.0, 40.0, float("inf")],
            "contract_type": ["month-to-month", "lifetime", None, "lifetime", "two-year"],
        }
    )
    window = profile.counts(frame)
    age = window.features["age"]
    assert age.missing == 2  # None and inf
    assert age.outside == 2  # beyond the reference max and min
    assert age.counts[0] == 1 and age.counts[-1] == 1  # clipped into the end bins
    contract = window.features["contract_type"]
    assert contract.missing == 1 and contract.outside == 2
    assert contract.counts[-1] == 2  # unseen values land in __other__
    # A profiled column absent from the frame counts as missing on every row.
    assert window.features["region"].missing == len(frame)
    assert window.features["region"].present == 0


def test_windows_merge_by_addition(profile, churn):
    a, b = churn.iloc[:1000], churn.iloc[1000:]
    merged = profile.counts(a) + profile.counts(b)
    whole = profile.counts(churn)
    assert merged.rows == whole.rows
    for name in profile.features:
        assert merged.features[name].counts.tolist() == whole.features[name].counts.tolist()
        assert merged.features[name].total == pytest.approx(whole.features[name].total)
    assert (whole - profile.counts(b)).features["age"].counts.tolist() == (
        profile.counts(a).features["age"].counts.tolist()
    )
    started = profile.empty_counts() + whole
    assert started.to_dict()["features"] == whole.to_dict()["features"]
    assert started.predictions.present == 0  # the zero window has zero output counts


def test_window_counts_round_trip_and_reject_mismatched_bins(profile, churn):
    window = profile.counts(churn.head(50), predictions=["yes"] * 50, probabilities=[0.9] * 50)
    again = WindowCounts.from_dict(json.loads(json.dumps(window.to_dict())))
    assert again.to_dict() == window.to_dict()
    assert window.probabilities.counts[-1] == 50  # 0.9 is in the last bin of 0, 0.1, ..., 1
    with pytest.raises(ValidationError, match="bins"):
        _ = FeatureCounts.zeros(3) + FeatureCounts.zeros(4)
    with pytest.raises(ValidationError, match="malformed"):
        WindowCounts.from_dict({"rows": 1})


def test_json_round_trip_is_small_and_strict(profile):
    text = profile.to_json()
    assert len(text) < 20_000
    again = ReferenceProfile.from_json(text)
    assert again.to_json() == text
    assert again.features["age"].edges == profile.features["age"].edges
    assert isinstance(again.features["region"], CategoricalProfile)
    assert again.features["signup_date"].kind == "date"


def test_all_missing_column_is_valid_json():
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": [1.0, 2.0]})
    profile = ReferenceProfile.from_frame(frame)
    text = profile.to_json()
    assert "NaN" not in text
    again = ReferenceProfile.from_json(text)
    assert again.features["x"].count == 0 and again.features["x"].missing == 2
    assert again.counts(frame).features["x"].missing == 2


def test_bad_profile_json_is_a_validation_error():
    with pytest.raises(ValidationError, match="not valid JSON"):
        ReferenceProfile.from_json("{nope")
    with pytest.raises(ValidationError, match="schema_version"):
        ReferenceProfile.from_json('{"schema_version": 99}')
    with pytest.raises(ValidationError, match="malformed"):
        ReferenceProfile.from_json('{"schema_version": 1, "rows": 3}')


def test_outputs_are_profiled(profile):
    assert isinstance(profile.predictions, CategoricalProfile)
    assert set(profile.predictions.categories) == {"yes", "no"}
    assert profile.probabilities.edges == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert sum(profile.probabilities.counts) == profile.rows


def test_dates_are_profiled_in_days(churn):
    prof = ReferenceProfile.from_frame(churn[["signup_date"]], kinds=KINDS)
    dates = prof.features["signup_date"]
    later = pd.DataFrame({"signup_date": ["2100-01-01", "not a date"]})
    counts = prof.counts(later).features["signup_date"]
    assert counts.outside == 1 and counts.missing == 1
    span = pd.to_datetime(churn["signup_date"]).agg(["min", "max"])
    assert dates.max - dates.min == pytest.approx((span["max"] - span["min"]).days)


def test_merge_adds_counts_on_shared_bins(profile, churn):
    more = generate_churn(500, seed=9).drop(columns=["customer_id", "churn"])
    merged = profile.merge(profile.profile_like(more))
    assert merged.rows == profile.rows + 500
    age = merged.features["age"]
    assert age.count == profile.features["age"].count + more["age"].notna().sum()
    pooled = pd.concat([churn["age"], more["age"]])
    assert age.mean == pytest.approx(pooled.mean())
    assert age.std == pytest.approx(pooled.std(ddof=0), rel=1e-6)
    other = ReferenceProfile.from_frame(more, kinds=KINDS)
    with pytest.raises(ValidationError, match="different"):
        profile.merge(other)


def test_training_logs_the_profile(mloop_home, tmp_path):
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train
    from mloop.registry.tracking import configure_mlflow

    data = write_table(generate_churn(600, seed=5), tmp_path / "churn.csv")
    config = config_from_dict(
        {"train": {"params": {"n_estimators": 10}}, "evaluate": {"cv_folds": 0}}, source="test"
    )
    result = train(data, config, settings=mloop_home)
    configure_mlflow(mloop_home)
    profile = load_profile(result.run_id)
    assert profile is not None
    assert profile.features["signup_date"].kind == "date"
    assert profile.features["contract_type"].kind == "categorical"
    assert "customer_id" not in profile.features and "churn" not in profile.features
    assert profile.predictions is not None and profile.probabilities is not None
    assert sum(profile.predictions.counts) == 120  # the held-out split (20% of 600)

    import mlflow

    with mlflow.start_run() as run:
        pass
    assert load_profile(run.info.run_id) is None
    assert PROFILE_ARTIFACT.endswith(".json")
