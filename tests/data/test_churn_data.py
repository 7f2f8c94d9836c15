"""The synthetic churn generator: deterministic, realistic shape, learnable, drift on demand."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from mloop.data.churn import (
    COLUMNS,
    CONTRACT_TYPES,
    DRIFT_PAYMENT_METHOD,
    PAYMENT_METHODS,
    REGIONS,
    generate_churn,
)
from mloop.errors import ValidationError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_churn(4000, seed=11)


def test_same_seed_same_frame_other_seed_other_frame():
    pd.testing.assert_frame_equal(generate_churn(500, seed=3), generate_churn(500, seed=3))
    assert not generate_churn(500, seed=3).equals(generate_churn(500, seed=4))


def test_columns_types_and_values(frame):
    assert tuple(frame.columns) == COLUMNS
    assert frame["customer_id"].is_unique
    assert frame["customer_id"].iloc[0] == "C000001"
    assert frame["signup_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    for col in ("tenure_months", "num_support_calls", "churn"):
        assert pd.api.types.is_integer_dtype(frame[col]), col
    assert set(frame["churn"].unique()) == {0, 1}
    assert set(frame["contract_type"]) == set(CONTRACT_TYPES)
    assert set(frame["payment_method"]) == set(PAYMENT_METHODS)
    assert set(frame["region"]) == set(REGIONS)
    assert set(frame["internet_service"].dropna()) == {"dsl", "fiber", "none"}
    assert (frame["monthly_charges"] > 0).all()


def test_missing_values_and_outliers(frame):
    assert 0.015 < frame["age"].isna().mean() < 0.05
    assert frame["total_charges"].isna().any()
    assert frame["internet_service"].isna().any()
    for col in ("customer_id", "tenure_months", "monthly_charges", "churn", "contract_type"):
        assert not frame[col].isna().any(), col
    usage = frame["data_usage_gb"]
    q1, q3 = usage.quantile([0.25, 0.75])
    assert (usage > q3 + 3 * (q3 - q1)).any()


def test_churn_rate_and_direction_of_effects(frame):
    assert 0.20 < frame["churn"].mean() < 0.30
    by_contract = frame.groupby("contract_type")["churn"].mean()
    assert by_contract["month-to-month"] > by_contract["one-year"] > by_contract["two-year"]
    short = frame.loc[frame["tenure_months"] < 12, "churn"].mean()
    long = frame.loc[frame["tenure_months"] > 48, "churn"].mean()
    assert short > long
    assert (
        frame.loc[frame["num_support_calls"] >= 3, "churn"].mean()
        > frame.loc[frame["num_support_calls"] == 0, "churn"].mean()
    )
    assert (
        frame.loc[frame["internet_service"] == "fiber", "churn"].mean()
        > frame.loc[frame["internet_service"] == "dsl", "churn"].mean()
    )


def test_a_forest_learns_it(frame):
    X = pd.get_dummies(
        frame.drop(columns=["customer_id", "signup_date", "churn"]), dtype=float
    ).fillna(0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, frame["churn"], test_size=0.25, random_state=0, stratify=frame["churn"]
    )
    model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0, n_jobs=1)
    model.fit(X_train, y_train)
    assert roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]) > 0.78


def test_drift_shifts_distributions(frame):
    drifted = generate_churn(4000, seed=11, drift=True)
    assert tuple(drifted.columns) == COLUMNS
    ratio = drifted["monthly_charges"].mean() / frame["monthly_charges"].mean()
    assert 1.2 < ratio < 1.4
    assert drifted["num_support_calls"].mean() > frame["num_support_calls"].mean() + 0.5
    share = (drifted["contract_type"] == "month-to-month").mean()
    assert share > (frame["contract_type"] == "month-to-month").mean() + 0.1
    assert DRIFT_PAYMENT_METHOD in set(drifted["payment_method"])
    assert DRIFT_PAYMENT_METHOD not in set(frame["payment_method"])
    assert drifted["churn"].mean() > frame["churn"].mean()


def test_ids_have_a_fixed_width_and_sort_in_row_order():
    df = generate_churn(1200, seed=1)
    assert df["customer_id"].str.len().nunique() == 1
    assert df["customer_id"].is_monotonic_increasing


@pytest.mark.parametrize("rows", [0, -5, 2.5, "10", True])
def test_bad_row_counts(rows):
    with pytest.raises(ValidationError, match="rows must be a positive integer"):
        generate_churn(rows)
