"""Run a freshly loaded model on a few rows before it serves.

The first call of a model pays lazy costs (imports, scikit-learn's checks, numpy buffers), and a
model that cannot predict must never replace one that can. The rows are the MLflow input
example logged with the model when it has one that fits the signature, else rows synthesized
from the signature (zeros and ones, a placeholder string, a fixed date). They go through the
same path as requests: `InputSchema.validate` -> `InputSchema.frame` -> `LoadedModel.predict`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import MloopError, ValidationError
from mloop.model.loader import LoadedModel
from mloop.model.schema import InputSchema

log = logging.getLogger("mloop.serving")

WARM_UP_ROWS = 3
EXAMPLE = "input example"
SYNTHESIZED = "synthesized rows"

_SYNTHETIC: dict[str, list[Any]] = {
    "double": [0.0, 1.0, 0.5],
    "float": [0.0, 1.0, 0.5],
    "long": [0, 1, 2],
    "integer": [0, 1, 2],
    "string": ["warm-up", "a", "b"],
    "boolean": [False, True, False],
    "datetime": ["2024-01-01", "2024-06-15T12:00:00", "2025-01-01"],
}


class WarmUpError(MloopError):
    """The model loaded but failed on its warm-up rows: it is not put in service."""


def warm_up(model: LoadedModel) -> str:
    """Predict a few rows with `model`; return where the rows came from.

    Raises WarmUpError when the model raises or answers with the wrong number of rows.
    """
    rows, source = warm_up_rows(model)
    schema = model.schema
    frame = schema.frame([schema.validate(rows)])
    try:
        labels, probabilities = model.predict(frame)
    except Exception as exc:
        raise WarmUpError(
            f"warm-up failed on {len(rows)} rows ({source}): {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from exc
    if len(labels) != len(rows):
        raise WarmUpError(
            f"warm-up: the model answered {len(labels)} predictions for {len(rows)} rows"
        )
    if probabilities is not None and not np.isfinite(probabilities).all():
        raise WarmUpError("warm-up: the model answered probabilities that are not finite")
    return source


def warm_up_rows(model: LoadedModel) -> tuple[list[Any], str]:
    """The input example's first rows when they validate, else rows from the signature."""
    example = _input_example(model)
    if example:
        try:
            model.schema.validate(example)
        except ValidationError as exc:
            log.debug("input example of %s does not fit its signature: %s", model.uri, exc)
        else:
            return example, EXAMPLE
    return synthesized_rows(model.schema), SYNTHESIZED


def synthesized_rows(schema: InputSchema) -> list[dict[str, Any]]:
    """WARM_UP_ROWS rows that pass the schema's validation (every column filled)."""
    return [{f.name: _SYNTHETIC[f.type][i] for f in schema.features} for i in range(WARM_UP_ROWS)]


def _input_example(model: LoadedModel) -> list[Any] | None:
    """Up to WARM_UP_ROWS rows of the model's logged input example as JSON values, or None."""
    try:
        # lazy: mlflow +1.2 s to import; the server starts without it
        from mlflow.models import Model

        example = Model.load(model.uri).load_input_example(model.uri)
    except Exception as exc:  # no example, unreadable, or not an MLflow model URI
        log.debug("no input example for %s: %s", model.uri, exc)
        return None
    if example is None:
        return None

    if isinstance(example, dict):
        example = pd.DataFrame(example if _columnar(example) else [example])
    if isinstance(example, pd.DataFrame):
        records = example.head(WARM_UP_ROWS).to_dict("records")
        return [{str(k): _plain(v) for k, v in row.items()} for row in records]
    if isinstance(example, np.ndarray) and example.ndim == 2:
        return [[_plain(v) for v in row] for row in example[:WARM_UP_ROWS].tolist()]
    return None


def _columnar(example: dict[str, Any]) -> bool:
    return all(isinstance(v, list | tuple | np.ndarray) for v in example.values())


def _plain(value: Any) -> Any:
    """A JSON-like value: numpy scalars as Python, NaN/NaT as None, timestamps as ISO text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "isoformat"):
        try:
            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        return value.isoformat()
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
