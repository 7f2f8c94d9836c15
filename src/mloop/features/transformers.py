"""Feature steps that ship inside the logged model, so serving takes raw rows.

All are scikit-learn compatible (BaseEstimator params, `get_feature_names_out`, `set_output`)
and accept pandas frames or arrays; the work is vectorised per column, never per row.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

DATE_PARTS = ("year", "month", "day", "dayofweek", "quarter", "is_weekend")


def _as_frame(X, columns: Sequence[str] | None) -> pd.DataFrame:
    """A DataFrame view of X; arrays get the fitted (or positional) column names."""
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    names = list(columns) if columns is not None else [f"x{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=names)


def _record_input(est: BaseEstimator, X) -> None:
    """Set sklearn's `n_features_in_` and (for frames) `feature_names_in_`."""
    if isinstance(X, pd.DataFrame):
        est.feature_names_in_ = np.asarray(X.columns, dtype=object)
        est.n_features_in_ = X.shape[1]
    else:
        est.n_features_in_ = np.asarray(X).reshape(len(X), -1).shape[1]


def _check_width(est: BaseEstimator, X) -> None:
    width = X.shape[1] if hasattr(X, "shape") and len(X.shape) > 1 else 1
    if width != est.n_features_in_:
        raise ValueError(
            f"{type(est).__name__} was fitted on {est.n_features_in_} columns, got {width}"
        )


class DateParts(TransformerMixin, BaseEstimator):
    """Expand each date column into year, month, day, dayofweek, quarter, is_weekend.

    Values are parsed as ISO dates (strings or datetimes); unparseable or missing values become
    NaN in every part, for an imputer downstream to fill.
    """

    def __init__(self, columns: Sequence[str] | None = None) -> None:
        self.columns = columns

    def fit(self, X, y=None):
        _record_input(self, X)
        names = getattr(self, "feature_names_in_", None)
        if self.columns is not None:
            self.columns_ = list(self.columns)
        elif names is not None:
            self.columns_ = [str(c) for c in names]
        else:
            self.columns_ = [f"x{i}" for i in range(self.n_features_in_)]
        frame = _as_frame(X, self.columns_ if names is None else None)
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"DateParts: columns not in the input: {missing}")
        return self

    def transform(self, X):
        check_is_fitted(self, "columns_")
        _check_width(self, X)
        names = getattr(self, "feature_names_in_", None)
        frame = _as_frame(X, None if names is not None else self.columns_)
        blocks = []
        for col in self.columns_:
            dates = _parse_dates(frame[col])
            dow = dates.dt.day_of_week.to_numpy(dtype=float, na_value=np.nan)
            blocks.append(
                np.column_stack(
                    [
                        dates.dt.year.to_numpy(dtype=float, na_value=np.nan),
                        dates.dt.month.to_numpy(dtype=float, na_value=np.nan),
                        dates.dt.day.to_numpy(dtype=float, na_value=np.nan),
                        dow,
                        dates.dt.quarter.to_numpy(dtype=float, na_value=np.nan),
                        np.where(np.isnan(dow), np.nan, (dow >= 5).astype(float)),
                    ]
                )
            )
        if not blocks:
            return np.empty((len(frame), 0))
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(
            [f"{c}_{part}" for c in self.columns_ for part in DATE_PARTS], dtype=object
        )


def _parse_dates(values: pd.Series) -> pd.Series:
    """Parse a column as dates; anything unparseable becomes NaT (never raises)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    text = values.astype(object).where(values.notna(), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    return parsed.dt.tz_localize(None)


class IQRClipper(TransformerMixin, BaseEstimator):
    """Clip each numeric column to [Q1 - factor*IQR, Q3 + factor*IQR] learned at fit.

    Missing values pass through unchanged; a column with no values at fit is left unclipped.
    """

    def __init__(self, factor: float = 1.5) -> None:
        self.factor = factor

    def fit(self, X, y=None):
        if not (isinstance(self.factor, int | float) and self.factor >= 0):
            raise ValueError(f"IQRClipper: factor must be a number >= 0, got {self.factor!r}")
        _record_input(self, X)
        arr = _as_float(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            q1, q3 = (
                np.nanquantile(arr, [0.25, 0.75], axis=0)
                if len(arr)
                else (
                    np.full(arr.shape[1], np.nan),
                    np.full(arr.shape[1], np.nan),
                )
            )
        iqr = q3 - q1
        self.lower_ = np.where(np.isnan(q1), -np.inf, q1 - self.factor * iqr)
        self.upper_ = np.where(np.isnan(q3), np.inf, q3 + self.factor * iqr)
        return self

    def transform(self, X):
        check_is_fitted(self, "lower_")
        _check_width(self, X)
        return np.clip(_as_float(X), self.lower_, self.upper_)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "lower_")
        return _names_unchanged(self, input_features)


def _as_float(X) -> np.ndarray:
    """A 2-D float array; None and pandas NA become NaN."""
    if isinstance(X, pd.DataFrame):
        return X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.dtype == object:
        return (
            pd.DataFrame(arr)
            .apply(pd.to_numeric, errors="coerce")
            .to_numpy(dtype=float, na_value=np.nan)
        )
    return arr.astype(float)


class CategoryCleaner(TransformerMixin, BaseEstimator):
    """Turn categorical columns into object strings with NaN for every kind of missing value.

    Raw rows arrive with None, NaN or pandas NA, and sometimes numbers or booleans where strings
    were seen at fit; imputers and encoders need one missing marker and one value type.
    """

    def fit(self, X, y=None):
        _record_input(self, X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        _check_width(self, X)
        frame = _as_frame(X, None)
        out = np.empty(frame.shape, dtype=object)
        for i, (_, col) in enumerate(frame.items()):
            missing = col.isna().to_numpy()
            values = col.astype(object).to_numpy()
            values = np.where(missing, np.nan, values)
            if not missing.all():
                present = ~missing
                values[present] = values[present].astype(str)
            out[:, i] = values
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        return _names_unchanged(self, input_features)


def _names_unchanged(step, input_features) -> np.ndarray:
    """Output names of a one-to-one step: the input names, as sklearn's API expects."""
    if input_features is not None:
        return np.asarray(input_features, dtype=object)
    names = getattr(step, "feature_names_in_", None)
    if names is not None:
        return np.asarray(names, dtype=object)
    return np.asarray([f"x{i}" for i in range(step.n_features_in_)], dtype=object)
