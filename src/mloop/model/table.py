"""Validate a whole table (a chunk of a data file) against a model's input schema, column by
column: the batch side of `mloop.model.schema`, with the same types, limits and reasons.

`InputSchema.validate` (HTTP) refuses a request at its first bad row; a batch file instead
keeps its good rows and sets the bad ones aside with a reason. Every check here is one numpy or
pandas operation over the column; per-row Python work happens only to word the reasons of rows
that failed. The result has the same columns and dtypes as `InputSchema.to_frame` gives.

Values come typed (Parquet, or CSV read with the schema's types) or as strings (a CSV column
holding a value that did not parse), so every check accepts both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import ValidationError
from mloop.model.schema import (
    _BOOLEAN,
    _FLOAT32_MAX,
    _INT_BOUNDS,
    _INTEGER,
    _KINDS,
    _NUMBER,
    _STRING,
    Feature,
    InputSchema,
)

_TRUE = frozenset({"true", "1", "t", "yes", "y"})
_FALSE = frozenset({"false", "0", "f", "no", "n"})


@dataclass
class CheckedChunk:
    """The rows that passed (as the model's frame), and which rows failed and why."""

    frame: pd.DataFrame
    good: np.ndarray  # bool per input row
    reasons: np.ndarray  # object per input row: None for good rows
    flagged: int = 0  # good rows outside their feature contract under a `count` rule

    @property
    def rejected(self) -> int:
        return int((~self.good).sum())


def missing_columns(schema: InputSchema, columns: list[str]) -> None:
    """ValidationError when the data lacks features of the model (checked once per file)."""
    missing = [name for name in schema.names if name not in columns]
    if missing:
        raise ValidationError(
            f"the input has no column for feature {', '.join(repr(m) for m in missing)}",
            hint=f"the model takes: {', '.join(schema.names)}",
        )


def feature_columns(
    schema: InputSchema, columns: Sequence[str], exclude: Sequence[str] = ()
) -> list[str]:
    """The data's column holding each feature, in feature order (checked once per file).

    Columns are matched by name. A model with a tensor signature (features "0" to "N-1")
    also takes a file of exactly N value columns (besides `exclude`, the id), in file order.
    """
    if all(name in columns for name in schema.names):
        return list(schema.names)
    if schema.tensor is not None:
        values = [c for c in columns if c not in exclude]
        if len(values) == len(schema.names):
            return values
        raise ValidationError(
            f"the model takes {len(schema.names)} values per row (a tensor signature), but the "
            f"input has {len(values)} value columns ({', '.join(values) or 'none'})",
            hint=f"keep exactly {len(schema.names)} value columns besides the id column, or "
            f"name them {', '.join(schema.names)}",
        )
    missing_columns(schema, list(columns))
    return list(schema.names)


def check_chunk(schema: InputSchema, data: pd.DataFrame) -> CheckedChunk:
    """Validate every feature column of `data`; rows failing any check are rejected."""
    missing_columns(schema, list(data.columns))
    rows = len(data)
    bad = np.zeros(rows, dtype=bool)
    reasons = np.full(rows, None, dtype=object)
    converted: dict[str, Any] = {}
    for feature in schema.features:
        values, problems = _convert(feature, data[feature.name])
        for mask, reason in problems:
            new = mask & ~bad
            if new.any():
                reasons[new] = reason(new) if callable(reason) else reason
                bad |= new
        converted[feature.name] = values
    flags = None
    if schema.contract_check is not None:  # the model's features.yaml: reject rules refuse rows
        outcome = schema.contract_check.outcome([converted[n] for n in schema.names], skip=bad)
        if outcome.rejected is not None:
            reasons[outcome.rejected] = outcome.reasons[outcome.rejected]  # type: ignore[index]
            bad |= outcome.rejected
        flags = outcome.flags
    good = ~bad
    if bad.any():
        converted = {name: _take(values, good) for name, values in converted.items()}
    frame = pd.DataFrame(converted, columns=list(schema.names))
    flagged = 0 if flags is None else int(sum(r is not None for r in flags.reasons[good]))
    return CheckedChunk(frame, good, reasons, flagged)


def _take(values: Any, mask: np.ndarray) -> Any:
    if isinstance(values, pd.Series):
        return values[mask].reset_index(drop=True)
    return values[mask]


def _convert(feature: Feature, column: pd.Series):
    """(converted values, [(row mask, reason or reason-maker), ...]) for one feature."""
    kind, dtype = _KINDS[feature.type]
    null = column.isna().to_numpy()
    problems: list[tuple[np.ndarray, Any]] = []
    if feature.required and null.any():
        problems.append((null, f"feature {feature.name!r} is required"))
    name = feature.name
    if kind in (_NUMBER, _INTEGER):
        numbers = _numeric(column)
        unparsed = np.isnan(numbers) & ~null
        if unparsed.any():
            expects = "a number" if kind == _NUMBER else "an integer"
            problems.append((unparsed, _got(column, f"feature {name!r} expects {expects}")))
        infinite = np.isinf(numbers)
        if infinite.any():
            problems.append((infinite, _got(column, f"feature {name!r} is not finite")))
        finite = np.isfinite(numbers)
        if kind == _NUMBER:
            if dtype is np.float32:
                over = finite & (np.abs(np.where(finite, numbers, 0.0)) > _FLOAT32_MAX)
                if over.any():
                    problems.append((over, f"feature {name!r} is out of range for float"))
                return numbers.astype(np.float32), problems
            return numbers, problems
        safe = np.where(finite, numbers, 0.0)
        fraction = finite & (np.floor(safe) != safe)
        if fraction.any():
            problems.append((fraction, _got(column, f"feature {name!r} expects an integer")))
        low, high = _INT_BOUNDS[dtype]
        out = finite & ((safe < low) | (safe > high))
        if out.any():
            problems.append((out, f"feature {name!r} is out of range for {feature.type}"))
        if null.any():
            return numbers, problems  # an optional integer with nulls widens to float64
        if pd.api.types.is_integer_dtype(column.dtype):
            return column.to_numpy(dtype=dtype), problems
        return np.where(finite, safe, 0).astype(dtype), problems
    if kind == _BOOLEAN:
        return _booleans(feature, column, null, problems)
    if kind == _STRING:
        if feature.date:  # text the model reads as a date (`Feature.date`)
            parsed = pd.to_datetime(column.astype("str"), errors="coerce", format="ISO8601")
            unparsed = parsed.isna().to_numpy() & ~null
            if unparsed.any():
                problems.append(
                    (unparsed, _got(column, f"feature {name!r} expects an ISO 8601 date string"))
                )
        if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_object_dtype(
            column.dtype
        ):
            return column.reset_index(drop=True).array, problems
        return pd.array(column.astype("str").to_numpy(), dtype="str"), problems
    # datetime
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return pd.DatetimeIndex(column), problems
    parsed = pd.to_datetime(column.astype("str"), errors="coerce", format="ISO8601")
    unparsed = parsed.isna().to_numpy() & ~null
    if unparsed.any():
        problems.append(
            (unparsed, _got(column, f"feature {name!r} expects an ISO 8601 date string"))
        )
    return pd.DatetimeIndex(parsed), problems


def _numeric(column: pd.Series) -> np.ndarray:
    """float64 values; NaN where null or not a number (booleans are not numbers)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.full(len(column), np.nan)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    values = column.to_numpy(dtype=object)
    is_bool = np.fromiter((isinstance(v, bool) for v in values), bool, len(values))
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if is_bool.any():
        numbers[is_bool] = np.nan
    return numbers


def _booleans(feature: Feature, column: pd.Series, null: np.ndarray, problems: list):
    if pd.api.types.is_bool_dtype(column.dtype) and not null.any():
        return column.to_numpy(dtype=np.bool_), problems
    text = column.astype("str").str.strip().str.lower()
    truthy = text.isin(_TRUE).to_numpy()
    falsy = text.isin(_FALSE).to_numpy()
    unparsed = ~(truthy | falsy) & ~null
    if unparsed.any():
        problems.append((unparsed, _got(column, f"feature {feature.name!r} expects a boolean")))
    if null.any():
        values = pd.array(np.where(null, None, truthy).tolist(), dtype="boolean")
        return values, problems
    return truthy, problems


def _got(column: pd.Series, message: str):
    """A reason-maker naming each failing row's value (only called for the failing rows)."""

    def reasons(mask: np.ndarray) -> np.ndarray:
        values = column.to_numpy(dtype=object)[mask]
        return np.array([f"{message}, got {_show(v)}" for v in values], dtype=object)

    return reasons


def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."
