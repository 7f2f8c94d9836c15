"""Turn a loaded table into model inputs: feature spec, raw X, target y, task, and the split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mloop.errors import ValidationError
from mloop.features.spec import FeatureSpec, coerce_inputs
from mloop.pipeline.config import TrainConfig

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
MAX_CLASSES = 20  # an integer target with more distinct values is treated as regression


@dataclass
class Dataset:
    """Raw model inputs (spec columns only) and the target, with the task they imply."""

    spec: FeatureSpec
    X: pd.DataFrame
    y: pd.Series
    task: str


def detect_task(y: pd.Series) -> str:
    """binary / multiclass for labels, regression for a numeric target with many values."""
    distinct = y.nunique()
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        values = y.to_numpy(dtype=float)
        integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
        if not integral or distinct > MAX_CLASSES:
            return REGRESSION
    return BINARY if distinct <= 2 else MULTICLASS


def _task(y: pd.Series, declared: str | None, target: str) -> str:
    """The config's `task:` when given (checked against the target), else the detected one."""
    detected = detect_task(y)
    if declared is None:
        return detected
    if declared == REGRESSION:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise ValidationError(
                f"task: regression needs a numeric target; column {target!r} is {y.dtype}",
                hint="use task: classification, or pick a numeric data.target",
            )
        return REGRESSION
    if detected == REGRESSION:
        raise ValidationError(
            f"task: classification, but target column {target!r} is continuous "
            f"({y.nunique()} distinct numeric values)",
            hint=f"use task: regression (a classifier allows at most {MAX_CLASSES} classes)",
        )
    return detected


def prepare(df: pd.DataFrame, config: TrainConfig, source: str) -> Dataset:
    """Check the table against the config and build the raw inputs and target."""
    target = config.data.target
    if df.empty or len(df.columns) == 0:
        raise ValidationError(f"data file {source!r} has no rows")
    if target not in df.columns:
        raise ValidationError(
            f"target column {target!r} (data.target) is not in {source!r}",
            hint=f"columns: {', '.join(map(str, df.columns))}",
        )
    y = df[target]
    missing = np.flatnonzero(y.isna().to_numpy())
    if len(missing):
        rows = ", ".join(str(i + 1) for i in missing[:5])
        raise ValidationError(
            f"target column {target!r} has {len(missing)} missing value(s) "
            f"(data rows {rows}{', ...' if len(missing) > 5 else ''})"
        )
    drop = [*config.data.id_columns, *config.data.drop]
    if config.features.configured:
        spec = FeatureSpec(
            target=target,
            numeric=list(config.features.numeric or []),
            categorical=list(config.features.categorical or []),
            date=list(config.features.date or []),
            drop=[c for c in drop if c in df.columns],
        )
    else:
        spec = FeatureSpec.infer(df, target, drop=drop)
    spec.validate_against(df, source=repr(source))
    task = _task(y, config.task, target)
    if task != REGRESSION and y.nunique() < 2:
        raise ValidationError(
            f"target column {target!r} has a single class ({y.iloc[0]!r}); "
            "a classifier needs at least two"
        )
    return Dataset(
        spec=spec,
        X=coerce_inputs(df, spec).reset_index(drop=True),
        y=y.reset_index(drop=True),
        task=task,
    )


def split(ds: Dataset, test_split: float, random_state: int):
    """Train/test split, stratified for classifiers; too little data is a ValidationError."""
    n = len(ds.X)
    n_test = int(np.ceil(n * test_split))
    stratify = None
    if ds.task != REGRESSION:
        counts = ds.y.value_counts()
        n_classes = len(counts)
        if counts.min() < 2 or n_test < n_classes or n - n_test < n_classes:
            raise ValidationError(
                f"too few rows to split: {n} rows with class counts "
                f"{dict(counts.astype(int).items())} and test_split {test_split}",
                hint="every class needs at least 2 rows and a place in both splits; add data",
            )
        stratify = ds.y
    elif n < 4 or n_test < 2 or n - n_test < 2:
        raise ValidationError(f"too few rows to split: {n} rows with test_split {test_split}")
    try:
        return train_test_split(
            ds.X, ds.y, test_size=test_split, random_state=random_state, stratify=stratify
        )
    except ValueError as exc:
        raise ValidationError(f"cannot split the data: {exc}") from exc
