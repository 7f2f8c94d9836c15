"""Convert a fitted scikit-learn model to ONNX, or say which step cannot be converted.

A Pipeline that starts with a ColumnTransformer gets one ONNX input per raw column (float for
numbers, string for text and dates), like the served signature. Any other model gets one float
matrix input of all columns. Classifiers output `label` and `probabilities` (no ZipMap).

Needs the optional extra `mloop[onnx]` (skl2onnx): `mloop.optimize.optimize` checks it is
installed, then imports this module.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from skl2onnx import convert_sklearn
from skl2onnx._supported_operators import sklearn_operator_name_map
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from mloop.errors import ValidationError
from mloop.features.transformers import CategoryCleaner
from mloop.model.onnx import MATRIX_INPUT
from mloop.model.schema import InputSchema
from mloop.optimize import converters
from mloop.optimize.converters import Float32Round

NUMERIC = {"double", "float", "long", "integer"}
TEXT = {"string", "datetime"}


class ConversionError(ValidationError):
    """The model (or one of its steps) cannot be converted to ONNX."""


def to_onnx(model: Any, schema: InputSchema) -> Any:
    """The ONNX ModelProto of `model`; ConversionError naming the step that cannot convert."""
    converters.register()
    converters.register_internal()
    _check_steps(model)
    prepared = prepare(model)
    if _starts_with_columns(prepared):
        inputs = []
        for feature in schema.features:
            if feature.type in NUMERIC:
                inputs.append((feature.name, DoubleTensorType([None, 1])))
            elif feature.type in TEXT:
                inputs.append((feature.name, StringTensorType([None, 1])))
            else:
                raise ConversionError(
                    f"column {feature.name!r} has type {feature.type}, which the ONNX "
                    "conversion does not take (numbers, strings and dates only)"
                )
    else:
        wrong = [f.name for f in schema.features if f.type not in NUMERIC]
        if wrong:
            raise ConversionError(
                f"the model takes one numeric matrix, but column(s) {', '.join(wrong)} "
                "are not numbers",
                hint="put a ColumnTransformer first in the pipeline",
            )
        inputs = [(MATRIX_INPUT, FloatTensorType([None, len(schema)]))]
    options = {id(step): {"zipmap": False} for _, step in _walk(prepared) if _is_classifier(step)}
    try:
        return convert_sklearn(
            prepared,
            initial_types=inputs,
            options=options,
            target_opset={"": converters.OPSET, "ai.onnx.ml": 3},
        )
    except Exception as exc:  # skl2onnx raises many kinds; name the model part it reports
        raise ConversionError(
            f"skl2onnx cannot convert this model: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc


def prepare(model: Any) -> Any:
    """A copy with ONNX-equivalent settings: string imputers after CategoryCleaner treat ""
    (how missing categories reach ONNX) as missing."""
    prepared = copy.deepcopy(model)
    if isinstance(prepared, Pipeline) and _is_tree_model(prepared.steps[-1][1]):
        prepared.steps.insert(len(prepared.steps) - 1, ("round32", Float32Round()))
    for _, step in _walk(prepared):
        if isinstance(step, Pipeline):
            for (_, before), (_, after) in zip(step.steps, step.steps[1:], strict=False):
                if isinstance(before, CategoryCleaner) and isinstance(after, SimpleImputer):
                    after.missing_values = ""
    return prepared


def _check_steps(model: Any) -> None:
    """Refuse, naming the step, when skl2onnx has no converter for a step's class."""
    for path, step in _walk(model):
        if isinstance(step, Pipeline | ColumnTransformer | str):  # "drop", "passthrough"
            continue
        if type(step) not in sklearn_operator_name_map:
            raise ConversionError(
                f"step {path!r} ({type(step).__name__}) has no ONNX converter",
                hint="serve the scikit-learn model as it is, or replace the step with one "
                "skl2onnx supports",
            )


def _walk(model: Any, path: str = "model") -> Iterator[tuple[str, Any]]:
    """Every estimator inside `model` (pipelines and column transformers included)."""
    yield path, model
    if isinstance(model, Pipeline):
        for name, step in model.steps:
            yield from _walk(step, f"{path}.{name}" if path != "model" else name)
    elif isinstance(model, ColumnTransformer):
        for name, step, _ in getattr(model, "transformers_", model.transformers):
            yield from _walk(step, f"{path}.{name}")


def _starts_with_columns(model: Any) -> bool:
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    return isinstance(first, ColumnTransformer)


def _is_tree_model(step: Any) -> bool:
    """scikit-learn tree models compare float32(X) with float64 thresholds."""
    return type(step).__module__.startswith(
        ("sklearn.ensemble._forest", "sklearn.ensemble._gb", "sklearn.tree")
    )


def _is_classifier(step: Any) -> bool:
    return hasattr(step, "predict_proba") and hasattr(step, "classes_")
