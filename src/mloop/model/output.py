"""The shape of a model's answer: whatever `predict` returned, as one JSON value per row, and
back as MLflow's scoring server would answer it.

Routes, the batcher, the cache and the prediction log work row by row, so `output_rows` splits
an output into per-row values: an ndarray or list gives its items (a 2-D array gives one list
per row), a Series its values, a DataFrame one `{column: value}` object per row, and a dict of
equally long columns one `{key: value}` object per row. `mlflow_predictions` puts rows back
into what MLflow's `predictions_to_json` sends: a DataFrame as records, a Series as records
keyed by its name, a dict as columns, arrays as lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import MloopError

VALUES = "values"  # ndarray, list: the values as they are
SERIES = "series"  # MLflow answers [{name: value}, ...]
RECORDS = "records"  # DataFrame: [{column: value}, ...]
COLUMNS = "columns"  # dict: {key: [values]}


@dataclass(frozen=True)
class OutputShape:
    """How a model answers: the kind of object `predict` returned, and a Series' name."""

    kind: str = VALUES
    name: str = "0"


class OutputError(MloopError):
    """The model returned something that cannot be read as one answer per row."""


def output_rows(output: Any, rows: int) -> tuple[np.ndarray, OutputShape]:
    """The output as a 1-D array of `rows` JSON-ready values, and its shape.

    The array is numeric when the model answered plain numbers (so batch files keep typed
    columns), else of objects (strings, lists, dicts). Raises OutputError naming what came.
    """
    if isinstance(output, pd.DataFrame):
        values = [
            {str(k): plain(v) for k, v in record.items()} for record in output.to_dict("records")
        ]
        return _checked(_objects(values), rows, "a DataFrame"), OutputShape(RECORDS)
    if isinstance(output, pd.Series):
        name = "0" if output.name is None else str(output.name)
        return _checked(_array(output.to_numpy()), rows, "a Series"), OutputShape(SERIES, name)
    if isinstance(output, dict):
        columns = {str(k): _array(np.asarray(v)) for k, v in output.items()}
        if not columns or any(c.ndim != 1 or len(c) != rows for c in columns.values()):
            raise OutputError(
                f"the model returned a dict that is not {rows} values per key "
                f"(keys: {', '.join(columns) or 'none'})",
                hint="return a DataFrame, a Series, an array or a dict of equally long lists",
            )
        names = list(columns)
        values = [
            {n: plain(c[i]) for n, c in zip(names, columns.values(), strict=True)}
            for i in range(rows)
        ]
        return _objects(values), OutputShape(COLUMNS)
    if isinstance(output, np.ndarray | list | tuple):
        return _checked(_array(np.asarray(output)), rows, "an array"), OutputShape(VALUES)
    raise OutputError(
        f"the model returned {type(output).__name__}, not one answer per row",
        hint="return a DataFrame, a Series, an array or a dict of equally long lists",
    )


def mlflow_predictions(values: Sequence[Any], shape: OutputShape) -> Any:
    """The `predictions` member MLflow's scoring server would send for these rows."""
    if shape.kind == SERIES:
        return [{shape.name: v} for v in values]
    if shape.kind == COLUMNS:
        names = list(values[0]) if values else []
        return {n: [row[n] for row in values] for n in names}
    return list(values)


def plain(value: Any) -> Any:
    """A numpy or pandas scalar (or array) as the JSON value it stands for."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _array(array: np.ndarray) -> np.ndarray:
    """A 1-D array of per-row values: numeric stays numeric, anything else becomes objects."""
    if array.ndim == 1 and array.dtype.kind in "iufb":
        return array
    if array.ndim == 0:
        return array.reshape(1)
    return _objects([plain(v) for v in array])


def _objects(values: list[Any]) -> np.ndarray:
    """Values as a 1-D object array (numpy would turn lists of lists into a 2-D array)."""
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # item by item: lists must stay one value each
        array[i] = value
    return array


def _checked(array: np.ndarray, rows: int, what: str) -> np.ndarray:
    if len(array) != rows:
        raise OutputError(
            f"the model returned {what} of {len(array)} answers for {rows} rows",
            hint="predict must return one answer per input row",
        )
    return array
