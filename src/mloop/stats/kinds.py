"""How a column is seen by the drift code: its kind, and its values as floats or as strings.

Kinds: `numeric` (numbers), `date` (datetimes or ISO date strings, as days since 1970, so a
shift in dates is measured in days) and `categorical` (text, booleans, anything else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

NUMERIC, CATEGORICAL, DATE = "numeric", "categorical", "date"
KINDS = (NUMERIC, CATEGORICAL, DATE)
OTHER = "__other__"
_DAY_NS = 86_400 * 10**9


def infer_kind(series: pd.Series) -> str:
    """`numeric` for numbers, `date` for datetimes and ISO date strings, else `categorical`."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    if pd.api.types.is_bool_dtype(series):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(series):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(series) or _iso_dates(series):
        return DATE
    return CATEGORICAL


def looks_like_id(series: pd.Series, *, min_rows: int = 50) -> bool:
    """A text column whose every value is distinct: an identifier, not a feature to test."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna()
    return len(values) >= min_rows and values.nunique() == len(values)


def _iso_dates(series: pd.Series, sample: int = 200) -> bool:
    """True when a sample of the text values all parse as ISO-8601 dates (`2024-03-01...`)."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    values = series.dropna().head(sample)
    if values.empty or not all(isinstance(v, str) and len(v) >= 10 and v[4] == "-" for v in values):
        return False
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
    return bool(parsed.notna().all())


def numeric_values(series: pd.Series, kind: str = NUMERIC) -> np.ndarray:
    """Float64 values; missing, unparseable or infinite ones as NaN/inf (both count missing)."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    if kind == DATE:
        if pd.api.types.is_datetime64_any_dtype(series):
            stamps = series
            if getattr(stamps.dt, "tz", None) is not None:
                stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            stamps = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
            stamps = stamps.dt.tz_localize(None)
        ns = stamps.astype("datetime64[ns]").to_numpy().astype(np.int64).astype(np.float64)
        ns[stamps.isna().to_numpy()] = np.nan
        return ns / _DAY_NS
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def categorical_values(series: pd.Series) -> pd.Series:
    """Values as strings with missing kept as NA (booleans become 'True'/'False')."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series
    return series.astype("string")


def score_of(probabilities: Any) -> np.ndarray:
    """One score per row from probabilities: a vector as is; for a rows x classes matrix the
    positive-class column when binary, else the top class probability (the confidence)."""
    import pandas as pd  # lazy: the streamed drift path needs no pandas

    arr = np.asarray(probabilities)
    if arr.dtype == object:
        arr = pd.to_numeric(pd.Series(arr.ravel()), errors="coerce").to_numpy(np.float64)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr[:, 1]
    if arr.ndim == 2 and arr.shape[1] >= 1:
        return arr.max(axis=1)
    return arr.ravel()
