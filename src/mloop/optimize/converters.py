"""skl2onnx converters for mloop's own feature steps (features/transformers.py).

- IQRClipper: Max/Min against the fitted bounds.
- CategoryCleaner: identity on string tensors. Missing categories reach ONNX as "" (the
  runtime feeds them so), and `prepare` sets the following constant SimpleImputer to treat ""
  as missing, which is what NaN is in Python.
- DateParts: ISO dates parsed with ONNX string ops (opset 20: RegexFullMatch, StringSplit),
  day of week from the civil-date algorithm. A value that is not `YYYY-MM-DD[ T]hh:mm[:ss]`
  (optionally ending in Z) gives NaN parts, as an unparseable date does in Python. Offsets
  such as `+02:00`, which Python converts to UTC, are treated as unparseable here.

Imported only through `mloop.optimize.convert`, which `optimize` imports after checking that
the optional extra `mloop[onnx]` is installed; so skl2onnx and onnx are imported at the top.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer

from mloop.features.transformers import CategoryCleaner, DateParts, IQRClipper

DATE_PATTERN = r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?Z?"
OPSET = 20


def register() -> None:
    """Teach skl2onnx mloop's steps (idempotent)."""
    update_registered_converter(
        IQRClipper,
        "MloopIQRClipper",
        _same_shape_float,
        _clipper,
        parser=_double_parser("MloopIQRClipper"),
    )
    update_registered_converter(
        CategoryCleaner, "MloopCategoryCleaner", _same_shape, _cleaner, parser=_string_parser
    )
    update_registered_converter(
        DateParts,
        "MloopDateParts",
        _date_shape,
        _date_parts,
        parser=_double_parser("MloopDateParts"),
    )


def _string_parser(scope, model, inputs, custom_parsers=None):
    """Declare CategoryCleaner's output as strings, so the imputer after it stays on strings."""
    operator = scope.declare_local_operator("MloopCategoryCleaner", model)
    operator.inputs = inputs
    output = scope.declare_local_variable("cleaned", StringTensorType())
    operator.outputs.append(output)
    return operator.outputs


def _double_parser(alias: str):
    """A parser declaring a float64 output (numbers stay in double precision, as in Python)."""

    def parse(scope, model, inputs, custom_parsers=None):
        operator = scope.declare_local_operator(alias, model)
        operator.inputs = inputs
        operator.outputs.append(scope.declare_local_variable("out", DoubleTensorType()))
        return operator.outputs

    return parse


def _same_shape_float(operator) -> None:
    n = operator.inputs[0].get_first_dimension()
    kind = type(operator.inputs[0].type)
    width = getattr(operator.raw_operator, "n_features_in_", None)
    if width is None:
        width = operator.inputs[0].get_second_dimension()
    operator.outputs[0].type = kind([n, width])


def _same_shape(operator) -> None:
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = StringTensorType([n, operator.raw_operator.n_features_in_])


def _date_shape(operator) -> None:
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([n, 6 * len(operator.raw_operator.columns_)])


def _const(scope, container, value, dtype=np.float64) -> str:
    """An initializer holding `value` (float64, or int64 for shapes and indexes)."""
    name = scope.get_unique_variable_name("const")
    array = np.asarray(value, dtype=dtype)
    onnx_type = {np.int64: 7, np.float32: 1, np.float64: 11}[array.dtype.type]
    container.add_initializer(name, onnx_type, list(array.shape), array.ravel().tolist())
    return name


def _node(scope, container, op: str, inputs: list[str], **attrs) -> str:
    out = scope.get_unique_variable_name(op.lower())
    version = attrs.pop("op_version", None)
    container.add_node(
        op, inputs, [out], name=scope.get_unique_operator_name(op), op_version=version, **attrs
    )
    return out


def _clipper(scope, operator, container) -> None:
    step = operator.raw_operator
    x = operator.inputs[0].full_name
    dtype = np.float32 if "Float" in type(operator.inputs[0].type).__name__ else np.float64
    lower = _const(scope, container, step.lower_, dtype)
    upper = _const(scope, container, step.upper_, dtype)
    floor = _node(scope, container, "Max", [x, lower])
    container.add_node(
        "Min",
        [floor, upper],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Min"),
    )


def _cleaner(scope, operator, container) -> None:
    container.add_node(
        "Identity",
        [operator.inputs[0].full_name],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Identity"),
    )


def _date_parts(scope, operator, container) -> None:
    step = operator.raw_operator
    n_cols = len(step.columns_)
    x = operator.inputs[0].full_name
    node = lambda op, inputs, **a: _node(scope, container, op, inputs, **a)  # noqa: E731
    const = lambda v, dtype=np.float64: _const(scope, container, v, dtype)  # noqa: E731

    ok = node("RegexFullMatch", [x], pattern=DATE_PATTERN, op_version=OPSET)
    placeholder = _string_const(scope, container, "1970-01-01")
    safe = node("Where", [ok, x, placeholder])
    zero = const(0, np.int64)

    def first_piece(text: str, delimiter: str) -> str:
        pieces = _split(scope, container, text, delimiter, 1)
        return node("Gather", [pieces, zero], axis=2)

    date_text = first_piece(first_piece(safe, "T"), " ")
    parts = _split(scope, container, date_text, "-", 2)
    year, month, day = (
        node("Cast", [node("Gather", [parts, const(i, np.int64)], axis=2)], to=11) for i in range(3)
    )
    one, two, three, seven = const(1.0), const(2.0), const(3.0), const(7.0)

    def floor_div(a: str, b: str) -> str:
        return node("Floor", [node("Div", [a, b])])

    def mod(a: str, b: str) -> str:
        return node("Sub", [a, node("Mul", [b, floor_div(a, b)])])

    early = node("Cast", [node("LessOrEqual", [month, two])], to=11)
    y = node("Sub", [year, early])
    era = floor_div(y, const(400.0))
    yoe = node("Sub", [y, node("Mul", [era, const(400.0)])])
    mp = mod(node("Add", [month, const(9.0)]), const(12.0))
    doy = node(
        "Sub",
        [
            node(
                "Add",
                [floor_div(node("Add", [node("Mul", [mp, const(153.0)]), two]), const(5.0)), day],
            ),
            one,
        ],
    )
    doe = node(
        "Add",
        [
            node(
                "Sub",
                [
                    node("Add", [node("Mul", [yoe, const(365.0)]), floor_div(yoe, const(4.0))]),
                    floor_div(yoe, const(100.0)),
                ],
            ),
            doy,
        ],
    )
    days = node("Sub", [node("Add", [node("Mul", [era, const(146097.0)]), doe]), const(719468.0)])
    dow = mod(node("Add", [days, three]), seven)
    quarter = node("Add", [floor_div(node("Sub", [month, one]), three), one])
    weekend = node("Cast", [node("GreaterOrEqual", [dow, const(5.0)])], to=11)

    nan = const(np.nan)
    stacked = []
    axis = const([2], np.int64)
    for part in (year, month, day, dow, quarter, weekend):
        valid = node("Where", [ok, part, nan])
        stacked.append(node("Unsqueeze", [valid, axis]))
    joined = node("Concat", stacked, axis=2)
    shape = const([-1, 6 * n_cols], np.int64)
    container.add_node(
        "Reshape",
        [joined, shape],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Reshape"),
    )


def _split(scope, container, text: str, delimiter: str, maxsplit: int) -> str:
    out = scope.get_unique_variable_name("split")
    count = scope.get_unique_variable_name("split_count")
    container.add_node(
        "StringSplit",
        [text],
        [out, count],
        name=scope.get_unique_operator_name("StringSplit"),
        op_version=OPSET,
        delimiter=delimiter,
        maxsplit=maxsplit,
    )
    return out


def _string_const(scope, container, value: str) -> str:
    name = scope.get_unique_variable_name("text")
    container.add_initializer(name, TensorProto.STRING, [], [value.encode()])
    return name


class Float32Round(TransformerMixin, BaseEstimator):
    """A marker step put before a tree ensemble in the ONNX copy: scikit-learn trees compare
    float32(X) with float64 thresholds, so the graph rounds X to float32 and back."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float32).astype(np.float64)


def register_internal() -> None:
    """Converters for the ONNX copy only: double-precision imputer and the float32 rounding."""
    update_registered_converter(
        Float32Round, "MloopFloat32Round", _same_shape_float, _round32,
        parser=_double_parser("MloopFloat32Round"),
    )  # fmt: skip
    update_registered_converter(SimpleImputer, "SklearnImputer", _imputer_shape, _imputer)


def _round32(scope, operator, container) -> None:
    x = operator.inputs[0].full_name
    single = _node(scope, container, "Cast", [x], to=1)
    container.add_node(
        "Cast", [single], [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Cast"), to=11,
    )  # fmt: skip


def _imputer_shape(operator) -> None:
    n = operator.inputs[0].get_first_dimension()
    width = sum(v.get_second_dimension() or 0 for v in operator.inputs) or None
    if hasattr(operator.raw_operator, "statistics_"):
        kept = operator.raw_operator.statistics_
        width = len(kept)
    operator.outputs[0].type = type(operator.inputs[0].type)([n, width])


def _imputer(scope, operator, container) -> None:
    """SimpleImputer as Where(missing, statistics, X): any dtype, double precision kept."""
    step = operator.raw_operator
    if len(operator.inputs) > 1:
        x = _node(scope, container, "Concat", [v.full_name for v in operator.inputs], axis=1)
    else:
        x = operator.inputs[0].full_name
    string = "String" in type(operator.inputs[0].type).__name__
    if string:
        fill = scope.get_unique_variable_name("fill")
        values = [str(v).encode() for v in step.statistics_]
        container.add_initializer(fill, TensorProto.STRING, [len(values)], values)
        marker = step.missing_values if isinstance(step.missing_values, str) else ""
        missing_text = scope.get_unique_variable_name("missing")
        container.add_initializer(missing_text, TensorProto.STRING, [], [marker.encode()])
        missing = _node(scope, container, "Equal", [x, missing_text])
    else:
        statistics = np.asarray(step.statistics_, dtype=np.float64)
        if np.isnan(statistics).any() and not step.keep_empty_features:
            raise RuntimeError(
                "a SimpleImputer drops all-missing columns; fit it with keep_empty_features=True"
            )
        dtype = np.float32 if "Float" in type(operator.inputs[0].type).__name__ else np.float64
        fill = _const(scope, container, np.nan_to_num(statistics, nan=0.0), dtype)
        missing = _node(scope, container, "IsNaN", [x])
    container.add_node(
        "Where", [missing, fill, x], [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )  # fmt: skip
