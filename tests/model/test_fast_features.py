"""The numpy feature steps (`model.fast_features`) give exactly the fitted ColumnTransformer's
matrix and the pipeline's probabilities, on the demo's churn model and on awkward rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from mloop.data.churn import generate_churn
from mloop.features.spec import FeatureSpec, build_preprocessor, coerce_inputs
from mloop.model import native
from mloop.model.fast_features import compile_features


def _fitted():
    frame = generate_churn(1500, seed=3)
    spec = FeatureSpec.infer(frame, "churn", drop=["customer_id"])
    X = coerce_inputs(frame, spec)
    model = Pipeline(
        [
            ("features", build_preprocessor(spec)),
            ("model", RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    ).fit(X, frame["churn"])
    return model, spec


def _awkward(spec: FeatureSpec, rows: int) -> pd.DataFrame:
    """Fresh rows with missing values everywhere and categories never seen in training."""
    X = coerce_inputs(generate_churn(rows, seed=11), spec)
    rng = np.random.default_rng(5)
    for column in X.columns:
        X.loc[rng.random(rows) < 0.15, column] = None
    X[spec.categorical] = X[spec.categorical].astype(object)
    for column in spec.categorical:
        X.loc[rng.random(rows) < 0.1, column] = "never-seen"
    X.loc[X.index % 17 == 0, spec.categorical[0]] = 7  # a number where text was seen
    X.loc[X.index % 19 == 0, spec.numeric[0]] = 1e9  # far outside the clip range
    return X


def test_matrix_is_identical_to_transform():
    model, spec = _fitted()
    features = compile_features(model[:-1])
    assert features is not None
    for rows in (1, 7, 500):
        X = _awkward(spec, rows)
        expected = model[:-1].transform(X)
        got = features(X)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_pipeline_probabilities_are_identical():
    model, spec = _fitted()
    X = _awkward(spec, 800)
    np.testing.assert_array_equal(native.proba_function(model)(X), model.predict_proba(X))


def test_other_inputs_and_transformers_keep_transform():
    model, spec = _fitted()
    features = compile_features(model[:-1])
    X = _awkward(spec, 20).drop(columns=[spec.numeric[0]])
    with pytest.raises(ValueError, match="columns are missing"):  # sklearn's own message
        features(X)
    assert compile_features(model) is None  # a Pipeline ending in a forest is no feature step
    assert compile_features(RandomForestClassifier()) is None


def test_a_plain_sklearn_pipeline_with_a_sparse_encoder_is_identical():
    from tests.support.modelkit import make_frame, make_pipeline

    frame, y = make_frame(300)
    model = make_pipeline().fit(frame, y)
    rows = make_frame(120, seed=9)[0]
    rows.loc[rows.index % 5 == 0, "plan"] = "enterprise"  # unseen at fit
    np.testing.assert_array_equal(compile_features(model[:-1])(rows), model[:-1].transform(rows))
    np.testing.assert_array_equal(native.proba_function(model)(rows), model.predict_proba(rows))


def test_dates_read_without_pandas_give_the_same_parts_and_odd_dates_keep_transform():
    model, spec = _fitted()
    features = compile_features(model[:-1])
    [date] = spec.date
    X = _awkward(spec, 300)
    X[date] = X[date].astype(object)
    X.loc[X.index % 5 == 0, date] = "2024-02-29T23:59:59.5"  # a plain date-time
    expected = model[:-1].transform(X)
    np.testing.assert_array_equal(features(X), expected)
    for odd in ("2024-01-01T10:00:00+05:00", "2024-02-30", "soon", "20240101"):
        Y = X.copy()
        Y.loc[3, date] = odd  # pandas' reading (a zone to UTC, NaN for a bad date)
        np.testing.assert_array_equal(features(Y), model[:-1].transform(Y))
