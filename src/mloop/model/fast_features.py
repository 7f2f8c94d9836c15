"""The fitted feature steps of mloop's pipelines as plain numpy: the same matrix, less overhead.

A fitted `ColumnTransformer` of the steps `features.spec.build_preprocessor` makes costs about
5 ms per call whatever the rows (1 or 20): scikit-learn's input checks and output wrapping per
step, and pandas work per column (`pd.to_numeric` through `DataFrame.apply`). On the serving
path that is paid once per batch and is most of a churn model's call. `compile_features`
returns a function doing the same arithmetic on the batch frame's columns with numpy (impute
with the fitted statistics, clip, scale, one-hot by a dict of the fitted categories), so the
matrix is identical, element for element, to `transform`'s (a test proves it on rows with
missing values and categories unseen at fit). Date columns (`DateParts` and its imputer) are
read with `datetime.fromisoformat` when every value is a plain ISO 8601 date without a zone
(what a request sends), else by the step's own `transform` (pandas). Steps it does not know
run through their own `transform`; a transformer it cannot compile at all gives None and the
caller keeps `transform`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

Features = Callable[[pd.DataFrame], np.ndarray]
Block = Callable[[pd.DataFrame], np.ndarray]


def compile_features(prefix: Any) -> Features | None:
    """A numpy version of `prefix.transform` (a Pipeline holding one ColumnTransformer, or the
    ColumnTransformer), or None when `prefix` is anything else. Inputs other than a DataFrame
    with every needed column go through `prefix.transform`."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    columns = prefix
    if isinstance(prefix, Pipeline):
        if len(prefix.steps) != 1:
            return None
        columns = prefix.steps[0][1]
    if type(columns) is not ColumnTransformer or getattr(columns, "sparse_output_", True):
        return None
    if _pandas_output(prefix) or _pandas_output(columns):
        return None
    blocks: list[tuple[list[str], Block]] = []
    for name, step, selected in columns.transformers_:
        if name == "remainder":
            if step != "drop":
                return None
            continue
        if isinstance(step, str) or not isinstance(selected, list) or not selected:
            return None
        if not all(isinstance(c, str) for c in selected):
            return None
        blocks.append((list(selected), _compile_step(step)))
    needed = {c for selected, _ in blocks for c in selected}

    def features(frame: Any) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame) or not needed.issubset(frame.columns):
            return prefix.transform(frame)
        return np.hstack([block(frame[selected]) for selected, block in blocks])

    return features


def _pandas_output(step: Any) -> bool:
    config = getattr(step, "_sklearn_output_config", {}) or {}
    return config.get("transform", "default") not in ("default", None)


def _compile_step(step: Any) -> Block:
    """One fitted sub-pipeline as numpy where its steps allow, else through `transform`."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
    if _pandas_output(step) or any(_pandas_output(s) for s in steps):
        return lambda frame: _dense(step.transform(frame))
    if all(_numeric_step(s) for s in steps):
        return lambda frame: _numeric(frame, steps, step)
    if _categorical_steps(steps):
        return lambda frame: _categorical(frame, steps)
    if _date_steps(steps):
        return lambda frame: _dates(frame, steps, step)
    return lambda frame: _dense(step.transform(frame))


def _dense(block: Any) -> Any:
    """A sparse step output made dense, as ColumnTransformer does for a dense output."""
    return block.toarray() if hasattr(block, "toarray") else block


def _numeric_step(step: Any) -> bool:
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    from mloop.features.transformers import IQRClipper

    if type(step) is SimpleImputer:
        return (
            _nan_marker(step.missing_values)
            and step.strategy in ("median", "mean", "most_frequent")
            and not step.add_indicator
            and np.asarray(step.statistics_).dtype.kind == "f"
            and not np.isnan(step.statistics_).any()  # every column kept, none empty
        )
    if type(step) is StandardScaler:
        return not getattr(step, "with_mean", False) or step.mean_ is not None
    return type(step) is IQRClipper


def _numeric(frame: pd.DataFrame, steps: list[Any], fallback: Any) -> np.ndarray:
    """Impute, clip and scale as the fitted steps do (the same float64 operations)."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    if not all(kind in "fiub" for kind in frame.dtypes.map(lambda d: d.kind)):
        return fallback.transform(frame)
    X = frame.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    for step in steps:
        if type(step) is SimpleImputer:
            missing = np.isnan(X)
            if missing.any():
                X[missing] = np.broadcast_to(step.statistics_, X.shape)[missing]
        elif type(step) is StandardScaler:
            if step.with_mean:
                X -= step.mean_
            if step.with_std:
                X /= step.scale_
        else:  # IQRClipper
            X = np.clip(X, step.lower_, step.upper_)
    return X


def _categorical_steps(steps: list[Any]) -> bool:
    """CategoryCleaner, a constant SimpleImputer, a dense OneHotEncoder ignoring unknowns."""
    return len(steps) == 3 and _categorical_shape(steps)


def _categorical_shape(steps: list[Any]) -> bool:
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from mloop.features.transformers import CategoryCleaner

    clean, impute, onehot = steps
    return (
        type(clean) is CategoryCleaner
        and type(impute) is SimpleImputer
        and impute.strategy == "constant"
        and isinstance(impute.fill_value, str)
        and _nan_marker(impute.missing_values)
        and not impute.add_indicator
        and type(onehot) is OneHotEncoder
        and onehot.handle_unknown == "ignore"
        and onehot.drop_idx_ is None
        and not getattr(onehot, "_infrequent_enabled", False)
        and not onehot.sparse_output
        and np.dtype(onehot.dtype) == np.float64
        and all(np.asarray(c).dtype == object for c in onehot.categories_)
    )


def _nan_marker(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _categorical(frame: pd.DataFrame, steps: list[Any]) -> np.ndarray:
    """Text (or NaN), filled, one-hot by the fitted categories; unseen values all zeros."""
    _clean, impute, onehot = steps
    fill = impute.fill_value
    lookups = getattr(onehot, "_mloop_lookups", None)
    if lookups is None:
        lookups = [{c: j for j, c in enumerate(cats.tolist())} for cats in onehot.categories_]
        onehot._mloop_lookups = lookups
    widths = [len(lookup) for lookup in lookups]
    out = np.zeros((len(frame), sum(widths)), dtype=np.float64)
    offset = 0
    for (_, col), lookup, width in zip(frame.items(), lookups, widths, strict=True):
        values = col.to_numpy(dtype=object)
        missing = pd.isna(values)
        for i, value in enumerate(values.tolist()):
            j = lookup.get(fill if missing[i] else str(value))
            if j is not None:
                out[i, offset + j] = 1.0
        offset += width
    return out


def _date_steps(steps: list[Any]) -> bool:
    """DateParts, then a numeric imputer (`_numeric_step`) filling the parts left missing."""
    # lazy: sklearn +1.0 s to import (batch-predict, model loads); only sklearn models need it
    from sklearn.impute import SimpleImputer

    from mloop.features.transformers import DateParts

    return (
        len(steps) == 2
        and type(steps[0]) is DateParts
        and type(steps[1]) is SimpleImputer
        and _numeric_step(steps[1])
    )


_NAN_PARTS = (math.nan,) * 6


def _dates(frame: pd.DataFrame, steps: list[Any], fallback: Any) -> np.ndarray:
    """DateParts' six parts per date column (year, month, day, day of week, quarter, weekend),
    then the imputer's fill; through `fallback.transform` unless every value is missing or a
    plain ISO 8601 text (`schema._plain_date`: the same wall-clock time pandas reads)."""
    from mloop.model.schema import _plain_date

    parts, impute = steps
    if list(frame.columns) != list(parts.columns_):
        return _dense(fallback.transform(frame))
    rows = []
    for _, col in frame.items():
        if col.dtype.kind == "M":
            return _dense(fallback.transform(frame))
        values = col.to_numpy(dtype=object)
        missing = pd.isna(values)
        column = []
        for value, absent in zip(values.tolist(), missing.tolist(), strict=True):
            if absent:
                column.append(_NAN_PARTS)
                continue
            if type(value) is not str or not _plain_date(value):
                return _dense(fallback.transform(frame))
            day = datetime.datetime.fromisoformat(value)
            dow = day.weekday()
            column.append(
                (day.year, day.month, day.day, dow, (day.month - 1) // 3 + 1, float(dow >= 5))
            )
        rows.append(column)
    X = np.array(
        [[v for column in rows for v in column[i]] for i in range(len(frame))],
        dtype=np.float64,
    ).reshape(len(frame), 6 * len(rows))
    missing = np.isnan(X)
    if missing.any():
        X[missing] = np.broadcast_to(impute.statistics_, X.shape)[missing]
    return X
