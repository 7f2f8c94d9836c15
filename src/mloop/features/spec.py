"""Which columns are features of which kind, and the preprocessor that turns raw rows into them.

A FeatureSpec comes from the config's `features` section or is inferred from a frame's dtypes;
`build_preprocessor` turns it into the ColumnTransformer that ships inside the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mloop.errors import ValidationError
from mloop.features.transformers import CategoryCleaner, DateParts, IQRClipper

_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_SAMPLE = 200
_DATE_SHARE = 0.95


@dataclass
class FeatureSpec:
    """Feature columns by kind, plus the target and the columns dropped before training."""

    target: str
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    date: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)

    @property
    def input_columns(self) -> list[str]:
        """The raw columns the model takes, in spec order (numeric, categorical, date)."""
        return [*self.numeric, *self.categorical, *self.date]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(**data)

    @classmethod
    def infer(cls, df: pd.DataFrame, target: str, drop: Iterable[str] = ()) -> FeatureSpec:
        """Classify every column of `df` that is neither the target nor dropped, by dtype.

        Numbers are numeric, booleans and text are categorical, and text whose values look
        like ISO dates (or a datetime dtype) is a date column.
        """
        dropped = [c for c in drop if c in df.columns]
        spec = cls(target=target, drop=dropped)
        for name in df.columns:
            if name == target or name in dropped:
                continue
            col = df[name]
            if pd.api.types.is_bool_dtype(col):
                spec.categorical.append(str(name))
            elif pd.api.types.is_numeric_dtype(col):
                spec.numeric.append(str(name))
            elif pd.api.types.is_datetime64_any_dtype(col) or _looks_like_dates(col):
                spec.date.append(str(name))
            else:
                spec.categorical.append(str(name))
        return spec

    def validate_against(self, df: pd.DataFrame, source: str = "the data") -> None:
        """Raise ValidationError when a configured column is absent from `df`."""
        for kind in ("numeric", "categorical", "date"):
            missing = [c for c in getattr(self, kind) if c not in df.columns]
            if missing:
                raise ValidationError(
                    f"features.{kind} names column(s) not in {source}: {', '.join(missing)}",
                    hint=f"columns available: {', '.join(map(str, df.columns))}",
                )
        seen: dict[str, str] = {}
        for kind in ("numeric", "categorical", "date"):
            for col in getattr(self, kind):
                if col == self.target:
                    raise ValidationError(f"features.{kind} lists the target column {col!r}")
                if col in seen:
                    raise ValidationError(
                        f"column {col!r} is listed in both features.{seen[col]} and features.{kind}"
                    )
                seen[col] = kind
        if not seen:
            raise ValidationError(f"no feature columns left in {source}")


def _looks_like_dates(col: pd.Series) -> bool:
    """True when (nearly) all sampled non-missing values are ISO date strings that parse."""
    values = col.dropna()
    if values.empty:
        return False
    sample = values.iloc[:_DATE_SAMPLE].astype(str)
    if sample.str.match(_ISO_DATE).mean() < _DATE_SHARE:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601", utc=True)
    return bool(parsed.notna().mean() >= _DATE_SHARE)


def build_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """Raw columns -> model matrix: numeric impute/clip/scale, one-hot categoricals, date parts."""
    steps = []
    if spec.numeric:
        numeric = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("clip", IQRClipper(factor=1.5)),
                ("scale", StandardScaler()),
            ]
        )
        steps.append(("numeric", numeric, list(spec.numeric)))
    if spec.categorical:
        categorical = Pipeline(
            [
                ("clean", CategoryCleaner()),
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        steps.append(("categorical", categorical, list(spec.categorical)))
    if spec.date:
        dates = Pipeline(
            [
                ("parts", DateParts()),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ]
        )
        steps.append(("date", dates, list(spec.date)))
    if not steps:
        raise ValidationError("the feature spec has no numeric, categorical or date columns")
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=True)


def coerce_inputs(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The raw model input: spec columns only, numeric ones as float64 (NaN-capable)."""
    out = df.loc[:, spec.input_columns].copy()
    for col in spec.numeric:
        if not pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            converted = pd.to_numeric(out[col], errors="coerce")
            bad = converted.isna() & out[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValidationError(
                    f"numeric feature {col!r} has a non-numeric value "
                    f"{out[col].iloc[row]!r} (data row {row + 1})"
                )
            out[col] = converted
        out[col] = out[col].astype("float64")
    return out
