"""Feature transformers and the preprocessor built from a FeatureSpec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from mloop.data import generate_churn
from mloop.errors import ValidationError
from mloop.features import (
    CategoryCleaner,
    DateParts,
    FeatureSpec,
    IQRClipper,
    build_preprocessor,
    coerce_inputs,
)


def test_iqr_clipper_learns_bounds_and_clips():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 100.0], "b": [10.0, 10.0, 10.0, 10.0, -50.0]})
    clipper = IQRClipper().fit(X)
    # a: Q1=2, Q3=4, IQR=2 -> [-1, 7]; b: Q1=Q3=10 -> [10, 10]
    np.testing.assert_allclose(clipper.lower_, [-1.0, 10.0])
    np.testing.assert_allclose(clipper.upper_, [7.0, 10.0])
    out = clipper.transform(pd.DataFrame({"a": [-5.0, 3.0, 50.0], "b": [0.0, np.nan, 99.0]}))
    np.testing.assert_allclose(out, [[-1.0, 10.0], [3.0, np.nan], [7.0, 10.0]])
    assert list(clipper.get_feature_names_out()) == ["a", "b"]
    assert clone(clipper).get_params() == {"factor": 1.5}
    wide = IQRClipper(factor=3).fit(X)
    assert wide.upper_[0] == pytest.approx(10.0)


def test_iqr_clipper_all_missing_column_and_arrays():
    X = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    clipper = IQRClipper().fit(X)
    assert np.isneginf(clipper.lower_[1]) and np.isposinf(clipper.upper_[1])
    assert list(clipper.get_feature_names_out()) == ["x0", "x1"]
    with pytest.raises(ValueError, match="fitted on 2 columns, got 3"):
        clipper.transform(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="factor"):
        IQRClipper(factor=-1).fit(X)


def test_date_parts_values_names_and_unparseable():
    X = pd.DataFrame({"signup": ["2024-03-16", "2023-12-31", "not a date", None]})
    parts = DateParts().fit(X)
    out = parts.transform(X)
    assert list(parts.get_feature_names_out()) == [
        "signup_year",
        "signup_month",
        "signup_day",
        "signup_dayofweek",
        "signup_quarter",
        "signup_is_weekend",
    ]
    # 2024-03-16 is a Saturday, 2023-12-31 a Sunday.
    np.testing.assert_array_equal(out[0], [2024, 3, 16, 5, 1, 1])
    np.testing.assert_array_equal(out[1], [2023, 12, 31, 6, 4, 1])
    assert np.isnan(out[2]).all() and np.isnan(out[3]).all()


def test_date_parts_pandas_output_and_datetime_input():
    X = pd.DataFrame({"d": pd.to_datetime(["2024-01-01", "2024-07-04"])})
    parts = DateParts().set_output(transform="pandas").fit(X)
    out = parts.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.loc[1, "d_month"] == 7 and out.loc[0, "d_is_weekend"] == 0
    with pytest.raises(ValueError, match="columns not in the input"):
        DateParts(columns=["missing"]).fit(X)


def test_category_cleaner_unifies_missing_and_types():
    X = pd.DataFrame({"c": ["a", None, np.nan, 3], "d": [True, False, None, True]})
    out = CategoryCleaner().fit(X).transform(X)
    assert out[0, 0] == "a" and out[3, 0] == "3"
    assert pd.isna(out[1, 0]) and pd.isna(out[2, 0]) and pd.isna(out[2, 1])
    assert out[0, 1] == "True"


def test_spec_inference():
    df = generate_churn(300, seed=2)
    spec = FeatureSpec.infer(df, "churn", drop=["customer_id", "not_there"])
    assert spec.date == ["signup_date"]
    assert spec.categorical == ["contract_type", "payment_method", "internet_service", "region"]
    assert "tenure_months" in spec.numeric and "churn" not in spec.numeric
    assert spec.drop == ["customer_id"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    mixed = pd.DataFrame(
        {"flag": [True, False], "code": ["2024-01-01", "x"], "y": [0, 1], "n": [1, 2]}
    )
    inferred = FeatureSpec.infer(mixed, "y")
    assert inferred.categorical == ["flag", "code"] and inferred.numeric == ["n"]


def test_spec_validation_errors():
    df = pd.DataFrame({"a": [1.0], "b": ["x"], "y": [1]})
    with pytest.raises(ValidationError, match="features.numeric .*: zz"):
        FeatureSpec("y", numeric=["a", "zz"]).validate_against(df)
    with pytest.raises(ValidationError, match="both features.numeric and features.categorical"):
        FeatureSpec("y", numeric=["a"], categorical=["a"]).validate_against(df)
    with pytest.raises(ValidationError, match="lists the target column 'y'"):
        FeatureSpec("y", numeric=["y"]).validate_against(df)
    with pytest.raises(ValidationError, match="no feature columns"):
        FeatureSpec("y").validate_against(df)
    with pytest.raises(ValidationError, match="no numeric, categorical or date"):
        build_preprocessor(FeatureSpec("y"))
    with pytest.raises(ValidationError, match=r"numeric feature 'b' .*'x' \(data row 1\)"):
        coerce_inputs(df, FeatureSpec("y", numeric=["b"]))


def test_preprocessor_end_to_end_with_unknown_categories_and_missing_values():
    df = generate_churn(400, seed=9)
    spec = FeatureSpec.infer(df, "churn", drop=["customer_id"])
    X = coerce_inputs(df, spec)
    model = Pipeline(
        [("features", build_preprocessor(spec)), ("model", DecisionTreeClassifier(max_depth=3))]
    ).fit(X, df["churn"])
    names = list(model.named_steps["features"].get_feature_names_out())
    assert "numeric__tenure_months" in names
    assert "categorical__contract_type_two-year" in names
    assert "categorical__internet_service_missing" in names
    assert "date__signup_date_is_weekend" in names
    raw = pd.DataFrame(
        [
            {c: None for c in spec.input_columns},
            {
                **X.iloc[0].to_dict(),
                "payment_method": "never-seen",
                "region": "mars",
                "signup_date": "garbage",
                "monthly_charges": 1e9,
            },
        ]
    )
    proba = model.predict_proba(raw)
    assert proba.shape == (2, 2) and np.isfinite(proba).all()
    matrix = model.named_steps["features"].transform(raw)
    assert np.isfinite(matrix).all()
    # The huge monthly charge is clipped, so it scales to a modest value.
    idx = names.index("numeric__monthly_charges")
    assert abs(matrix[1, idx]) < 5
