"""The native scikit-learn path gives exactly what MLflow's pyfunc path gives."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mloop.model.native import JoinedForest, is_fast, proba_function
from mloop.registry.resolve import load_model
from tests.support import modelkit


def test_served_model_matches_the_pyfunc_path_bit_for_bit(trained):
    model = load_model("churn/1", trained.settings)
    frame = model.schema.to_frame(modelkit.json_rows(trained.frame))
    labels, probabilities = model.predict(frame)
    pyfunc = mlflow.pyfunc.load_model("models:/churn/1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_labels = np.asarray(pyfunc.predict(frame))
    reloaded = mlflow.sklearn.load_model("models:/churn/1")  # what the pyfunc wraps
    assert labels.tolist() == expected_labels.tolist()
    assert np.array_equal(probabilities, reloaded.predict_proba(frame))
    assert is_fast(trained.pipeline)


@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
@pytest.mark.parametrize("rows", [1, 7, 64, 300])  # 300: past the one-table gather
def test_forest_probabilities_are_identical(cls, rows):
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(400, 6)), columns=[f"f{i}" for i in range(6)])
    X.iloc[::17, 2] = np.nan  # trees learn where missing values go
    y = rng.integers(0, 3, 400)
    forest = cls(n_estimators=15, random_state=0).fit(X, y)
    fast = proba_function(forest)
    assert np.array_equal(fast(X.head(rows)), forest.predict_proba(X.head(rows)))


@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
def test_the_joined_forest_walks_all_trees_at_once_with_identical_numbers(cls):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    X[::13, 1] = np.nan
    y = rng.integers(0, 4, 300)
    for trees in (1, 2, 7, 33):  # routers of every shape, down to a single tree
        forest = cls(n_estimators=trees, random_state=0).fit(X, y)
        joined = JoinedForest.build([t.tree_ for t in forest.estimators_], 4)
        assert joined is not None
        assert joined.tree.node_count == sum(t.tree_.node_count for t in forest.estimators_) + (
            trees - 1
        )
        assert np.array_equal(joined.proba(X[:40]), forest.predict_proba(X[:40]))


def test_sparse_input_gives_identical_probabilities():
    from scipy import sparse

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 5)) * (rng.random((200, 5)) > 0.5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    rows = sparse.csr_matrix(X[:9])
    assert np.array_equal(proba_function(forest)(rows), forest.predict_proba(rows))


def test_other_models_use_their_own_predict_proba():
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    assert not is_fast(model)
    assert np.array_equal(proba_function(model)(X), model.predict_proba(X))


def test_a_bad_input_fails_like_scikit_learn():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, [0, 1, 0, 1])
    with pytest.raises(ValueError):
        proba_function(forest)(pd.DataFrame({"a": ["x"]}))


def _small_forest() -> tuple[RandomForestClassifier, pd.DataFrame]:
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    X["d"] = rng.integers(0, 9, 200)  # an integer column: sklearn casts it to float32 too
    forest = RandomForestClassifier(n_estimators=9, random_state=0).fit(X, X["a"] > 0)
    return forest, X


def test_a_clean_numeric_frame_skips_sklearns_checks_with_identical_numbers(monkeypatch):
    forest, X = _small_forest()
    expected = forest.predict_proba(X)
    fast = proba_function(forest)

    def refuse(_X):
        raise AssertionError("the checked path was taken")

    monkeypatch.setattr(forest, "_validate_X_predict", refuse)
    assert np.array_equal(fast(X), expected)


@pytest.mark.parametrize(
    "change",
    [
        lambda X: X.assign(a=np.nan),  # missing values: the trees' own NaN handling decides
        lambda X: X.assign(b=1e39),  # overflows float32 to infinity
        lambda X: X[["b", "a", "c", "d"]],  # columns out of the fitted order
        lambda X: X.assign(c="x"),  # not numeric
    ],
)
def test_frames_needing_sklearns_checks_get_them(change):
    """Same answer or the same error as scikit-learn for frames the fast block does not take."""
    forest, X = _small_forest()
    odd = change(X.head(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's own overflow warning on the cast
        try:
            expected = forest.predict_proba(odd)
        except ValueError as exc:
            with pytest.raises(ValueError) as got:
                proba_function(forest)(odd)
            assert str(got.value) == str(exc)
            return
        assert np.array_equal(proba_function(forest)(odd), expected)
