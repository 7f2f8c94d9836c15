"""Fast native calls for scikit-learn models: the same numbers as `predict_proba`, less overhead.

A random forest's `predict_proba` spends most of a small call on bookkeeping, not on trees:
joblib dispatch and input checks once per tree (about 3.7 ms for 1 row of a 100-tree forest,
of which the trees themselves take 0.2 ms). `proba_function` returns a callable that checks the
input once (or not at all for a clean numeric frame with the fitted feature names: the serving
path's validated frames) and walks the trees directly (small calls all trees at once, see
`JoinedForest`), accumulating in the same order with the same float64 arithmetic as
scikit-learn, so the probabilities are bit-for-bit identical (a test proves it against the
pyfunc path). Models it does not know get their own `predict_proba`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mloop.model.fast_features import compile_features

ProbaFunction = Callable[[Any], np.ndarray]

# Up to this many rows a call walks the joined forest (for a 100-tree forest: 18 us instead
# of 270 us for 1 row, 380 instead of 600 for 16); above it, tree by tree is as fast.
JOINED_ROWS = 64
# Joining copies the nodes (64 bytes each): forests above this many nodes walk tree by tree.
_JOINED_MAX_NODES = 4_000_000


def proba_function(model: Any) -> ProbaFunction:
    """The fastest exact `predict_proba` for `model` (a Pipeline or an estimator)."""
    final, prefix = _split_pipeline(model)
    forest = _forest_path(final)
    if forest is None:
        return model.predict_proba
    if prefix is None:
        return forest
    features = compile_features(prefix) or prefix.transform

    def pipeline_proba(frame: Any) -> np.ndarray:
        return forest(features(frame))

    return pipeline_proba


def is_fast(model: Any) -> bool:
    """True when `proba_function(model)` takes the direct tree path."""
    final, _ = _split_pipeline(model)
    return _forest_path(final) is not None


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    """(final estimator, the transform steps before it or None)."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and len(model.steps) > 0:
        final = model.steps[-1][1]
        prefix = model[:-1] if len(model.steps) > 1 else None
        return final, prefix
    return model, None


def _forest_path(estimator: Any) -> ProbaFunction | None:
    """Direct tree walk for single-output forest classifiers; None for anything else."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if type(estimator) not in (RandomForestClassifier, ExtraTreesClassifier):
        return None
    if getattr(estimator, "n_outputs_", 1) != 1 or not hasattr(estimator, "estimators_"):
        return None
    trees = [tree.tree_ for tree in estimator.estimators_]
    n_classes = int(np.atleast_1d(estimator.n_classes_)[0])
    names = getattr(estimator, "feature_names_in_", None)
    expected = tuple(names) if names is not None else None
    joined = JoinedForest.build(trees, n_classes)

    def forest_proba(X: Any) -> np.ndarray:
        block = _numeric_block(X, expected)
        # Otherwise sklearn's own checks: float32, sparse CSR, feature names, NaN, infinity.
        X = block if block is not None else estimator._validate_X_predict(X)
        if joined is not None and isinstance(X, np.ndarray) and X.shape[0] <= JOINED_ROWS:
            return joined.proba(X)
        return _tree_by_tree(trees, X, n_classes)

    return forest_proba


def _tree_by_tree(trees: list[Any], X: Any, n_classes: int) -> np.ndarray:
    """Mean class probabilities, one tree's `predict` after the other (scikit-learn's sums)."""
    total = np.zeros((X.shape[0], n_classes), dtype=np.float64)
    for tree in trees:
        total += tree.predict(X)[:, :n_classes]
    total /= len(trees)
    return total


class JoinedForest:
    """A forest's trees as one scikit-learn `Tree`, so one `apply` call walks all of them.

    Walking a 100-tree forest tree by tree costs 100 Python-level `predict` calls (each
    building arrays and releasing and retaking the GIL) for a few microseconds of tree walking
    per row: 266 us for 1 row, 600 us for 16 (measured alone). Here the trees' nodes sit one
    after the other behind a small balanced "router" on an extra input column holding the
    tree's number; each row goes in once per tree, with that number. One `apply` (one GIL
    release) returns every row's leaf in every tree (18 us for 1 row, 380 us for 16); a table
    of the leaves' values gives the probabilities, added tree after tree in scikit-learn's
    order, so the numbers are bit-for-bit those of `predict_proba`. `build` checks that on
    sample rows and returns None (callers walk tree by tree) if this scikit-learn's internals
    differ.
    """

    def __init__(self, tree: Any, table: np.ndarray, count: int, n_features: int) -> None:
        self.tree = tree
        self.table = table  # joined node -> class values (zeros for router nodes)
        self.count = count
        self.n_features = n_features
        self.ids = np.arange(count, dtype=np.float32)[:, None]

    @classmethod
    def build(cls, trees: list[Any], n_classes: int) -> JoinedForest | None:
        if not trees or sum(t.node_count for t in trees) > _JOINED_MAX_NODES:
            return None
        try:
            joined = cls._join(trees, n_classes)
            rows = np.random.default_rng(0).normal(size=(8, trees[0].n_features))
            rows[0, :] = np.nan  # missing values take each node's learned direction
            rows = rows.astype(np.float32)
            same = np.array_equal(joined.proba(rows), _tree_by_tree(trees, rows, n_classes))
            return joined if same else None
        except Exception:  # another scikit-learn's Tree layout: the tree-by-tree walk
            return None

    @classmethod
    def _join(cls, trees: list[Any], n_classes: int) -> JoinedForest:
        # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
        from sklearn.tree._tree import TREE_LEAF, Tree

        states = [t.__getstate__() for t in trees]
        sizes = [state["node_count"] for state in states]
        routers = len(trees) - 1  # a balanced binary tree with one leaf per tree
        starts = np.cumsum([routers] + sizes[:-1]).tolist()
        nodes = np.zeros(routers + sum(sizes), dtype=states[0]["nodes"].dtype)
        table = np.zeros((len(nodes), n_classes), dtype=np.float64)
        n_features = trees[0].n_features
        free = iter(range(routers))

        def route(low: int, high: int) -> int:
            """The node sending tree numbers low..high to their trees' roots."""
            if low == high:
                return starts[low]
            node, middle = next(free), (low + high) // 2
            nodes[node]["feature"] = n_features  # the extra column: the tree's number
            nodes[node]["threshold"] = middle + 0.5
            nodes[node]["left_child"] = route(low, middle)
            nodes[node]["right_child"] = route(middle + 1, high)
            nodes[node]["n_node_samples"] = 1
            nodes[node]["weighted_n_node_samples"] = 1.0
            return node

        route(0, len(trees) - 1)
        for state, start in zip(states, starts, strict=True):
            part = state["nodes"].copy()
            inner = part["left_child"] != TREE_LEAF
            part["left_child"][inner] += start
            part["right_child"][inner] += start
            nodes[start : start + len(part)] = part
            table[start : start + len(part)] = state["values"].reshape(len(part), -1)[:, :n_classes]
        joined = Tree(n_features + 1, np.asarray(trees[0].n_classes, dtype=np.intp), 1)
        depth = max(t.max_depth for t in trees) + int(np.ceil(np.log2(len(trees))))
        joined.__setstate__(
            {
                "max_depth": depth,
                "node_count": len(nodes),
                "nodes": nodes,
                "values": np.zeros((len(nodes),) + states[0]["values"].shape[1:]),
            }
        )
        return cls(joined, table, len(trees), n_features)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Mean class probabilities of float32 rows `X` (rows x features)."""
        n = X.shape[0]
        rows = np.empty((self.count, n, self.n_features + 1), dtype=np.float32)
        rows[:, :, : self.n_features] = X
        rows[:, :, self.n_features] = self.ids
        leaves = self.tree.apply(rows.reshape(self.count * n, -1)).reshape(self.count, n)
        # Reducing over the first axis adds tree after tree, in order: scikit-learn's sums.
        total = np.add.reduce(self.table[leaves], axis=0)
        total /= self.count
        return total


def _numeric_block(X: Any, expected: tuple[str, ...] | None) -> np.ndarray | None:
    """X as the float32 array sklearn would make of it, when that needs no checking.

    A DataFrame with exactly the fitted feature names, in order, numeric, and finite after the
    cast (sklearn's checks would pass it unchanged) skips `_validate_X_predict`, which costs
    about 0.45 ms per call. Anything else returns None and goes through sklearn's checks.
    """
    if expected is None or not isinstance(X, pd.DataFrame):
        return None
    columns = X.columns
    if columns is not _checked_columns.get(expected):
        if tuple(columns) != expected:
            return None
        _checked_columns[expected] = columns  # the serving frames share one immutable Index
    values = X.to_numpy()
    if values.dtype.kind not in "fiu":
        return None
    with np.errstate(over="ignore"):  # an overflow becomes infinity: refused just below
        block = np.ascontiguousarray(values, dtype=np.float32)
    return block if np.isfinite(block).all() else None


# The last column Index found equal to each fitted name tuple: comparing a pandas Index to a
# tuple walks its (Arrow) values; an Index is immutable, so the same object needs no new look.
_checked_columns: dict[tuple[str, ...], Any] = {}
