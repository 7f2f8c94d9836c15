"""Validate JSON rows against a model's input signature and turn them into a typed DataFrame.

Column signatures name their columns; a tensor signature of shape `(-1, N)` (what
`infer_signature` gives for a numpy array) becomes N positional features named "0" to "N-1"
(the column labels pandas gives a frame made from the array), and the model is called with the
rows as one numpy array (`model_input`), as MLflow does. Rows are dicts by column name or lists
in signature order. Validation runs per column over the
whole batch (one `set(map(type, values))` and one numpy conversion per column); per-value Python
work only happens on the error path, to name the first offending row.

A request of a few rows (`_PLAIN_ROWS`, e.g. one `/predict` row) is checked value by value in
plain Python instead (`_plain_rows`: type checks, `datetime.fromisoformat` for dates), since a
numpy or pandas call per column costs more than the row itself; its typed arrays are built
once per model call for the whole batch (`frame`, in the model thread). Anything unusual there
(a null where refused, a wrong type, NaN, a date that is not plain ISO 8601) falls back to the
column-wise path, so accepted rows, their dtypes and every error message stay the same.

Nulls: MLflow 3.17's `infer_signature` marks a column `required: false` when the training
frame held NaN/None in it, and `required: true` otherwise. A JSON `null` is accepted only for
columns marked optional (it becomes NaN for numbers, a missing value for strings and dates);
anywhere else it is a 422 "feature 'x' is required". An optional integer column that receives
a null is widened to float64, which is what pandas does with the training data too.

NaN and +/-Infinity are never accepted as values (JSON has no such tokens; a missing value is
`null`).
"""

from __future__ import annotations

import copy
import datetime
import itertools
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import ValidationError

_NUMBER = "number"
_INTEGER = "integer"
_STRING = "string"
_BOOLEAN = "boolean"
_DATETIME = "datetime"

# MLflow DataType name -> (our kind, numpy dtype of the column).
_KINDS: dict[str, tuple[str, Any]] = {
    "double": (_NUMBER, np.float64),
    "float": (_NUMBER, np.float32),
    "long": (_INTEGER, np.int64),
    "integer": (_INTEGER, np.int32),
    "string": (_STRING, None),
    "boolean": (_BOOLEAN, np.bool_),
    "datetime": (_DATETIME, None),
}

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# numpy dtype kind -> itemsize -> MLflow type name, for tensor signatures.
_TENSOR_TYPES: dict[str, dict[int, str]] = {
    "f": {8: "double", 4: "float", 2: "float"},
    "i": {8: "long", 4: "integer", 2: "integer", 1: "integer"},
    "u": {4: "long", 2: "integer", 1: "integer"},
    "b": {1: "boolean"},
}
_PLAIN_NUMBERS = frozenset({float, int})  # not bool: True is not a number here
_INT_BOUNDS = {np.int64: (-(2**63), 2**63 - 1), np.int32: (-(2**31), 2**31 - 1)}
# Up to this many rows a request is validated value by value (`_plain_rows`): below it the
# fixed cost of a numpy or pandas call per column is most of a request's validation.
_PLAIN_ROWS = 16
# Dates the plain path accepts itself (pandas' ISO 8601 parser accepts them all): a calendar
# date with an optional time of day, no time zone (a batch mixing zones is pandas' to judge).
_PLAIN_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
)
_HUGE = 2**1023  # a larger int in a float column is the column-wise path's to refuse


@dataclass(frozen=True)
class Feature:
    """One input column: its name, MLflow type name and whether null is refused.

    `date`: a string column the model reads as an ISO 8601 date (its signature says string;
    the model's `DateParts` says date), so text that is not a date is refused.
    """

    name: str
    type: str
    required: bool = True
    date: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "required": self.required}
        if self.date:
            out["format"] = "date"
        return out


class InputSchema:
    """The columns a model takes, in signature order, and the validator for incoming rows."""

    def __init__(
        self, features: Sequence[Feature], *, tensor: tuple[int, ...] | None = None
    ) -> None:
        if not features:
            raise ValidationError("the model signature has no input columns")
        for feature in features:
            if feature.type not in _KINDS:
                raise ValidationError(
                    f"feature {feature.name!r} has type {feature.type!r}, which mloop cannot "
                    f"serve (supported: {', '.join(sorted(_KINDS))})"
                )
        self.features = tuple(features)
        self.names = tuple(f.name for f in features)
        self._name_set = frozenset(self.names)
        self.names_set = self._name_set
        # Every column a float64 number: small requests take one numpy call (`_float_rows`)
        # and model calls get a single-block frame (`frame`).
        self._all_float = all(f.type == "double" for f in self.features)
        # Positions of string columns: validated as object arrays, pandas strings in `frame`.
        self._strings = frozenset(
            i for i, f in enumerate(self.features) if _KINDS[f.type][0] == _STRING
        )
        self._index = pd.Index(self.names)  # built once: frames share the immutable index
        self._required = all(f.required for f in self.features)
        # Per column, the plain-Python acceptance test of `_plain_rows` (None: no plain path,
        # for the pandas-parsed datetime type), and the float a contract's range compares.
        checks = [_plain_check(f) for f in self.features]
        self._checks = tuple(checks) if all(c is not None for c in checks) else None
        self._numbers = tuple(_number_of(f) for f in self.features)
        self._texts = tuple(_KINDS[f.type][0] == _STRING for f in self.features)
        # The tensor's shape (e.g. (-1, 4)) when the model takes one numpy array, else None.
        self.tensor = tensor
        # The model's features.yaml rules (`model.contract_check`), checked by `validate`.
        self.contract_check: Any = None

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """Build from an `mlflow.models.ModelSignature` whose inputs are named columns."""
        if signature is None or signature.inputs is None:
            raise ValidationError(
                "the model has no input signature",
                hint="log the model with signature=infer_signature(X, y_pred)",
            )
        inputs = signature.inputs
        if getattr(inputs, "is_tensor_spec", lambda: False)():
            return cls._from_tensor(inputs.inputs)
        if not inputs.has_input_names():
            raise ValidationError(
                "the model signature has unnamed input columns",
                hint="log the model with a pandas DataFrame or a numpy array as the input example",
            )
        features = []
        for spec in inputs.inputs:
            type_name = getattr(spec.type, "name", str(spec.type))
            features.append(Feature(spec.name, str(type_name), bool(spec.required)))
        return cls(features)

    @classmethod
    def _from_tensor(cls, specs: Sequence[Any]) -> InputSchema:
        """One tensor of shape (-1,) or (-1, N): N positional features named "0" to "N-1"."""
        if len(specs) != 1:
            raise ValidationError(
                f"the model takes {len(specs)} input tensors; mloop serves models with one",
                hint="log the model with a single numpy array or a DataFrame as the input",
            )
        spec = specs[0]
        shape = tuple(spec.shape)
        if len(shape) == 1:
            width = 1
        elif len(shape) == 2 and shape[1] > 0:
            width = shape[1]
        else:
            raise ValidationError(
                f"the model takes a tensor of shape {shape}; mloop serves tables: shape (-1,) "
                "or (-1, N) with a fixed N",
                hint="serve it with `mlflow models serve`, or log it with a 2-D input example",
            )
        type_name = _TENSOR_TYPES.get(spec.type.kind, {}).get(spec.type.itemsize)
        if spec.type.kind in "USO":
            type_name = "string"
        if type_name is None:
            raise ValidationError(
                f"the model takes a tensor of {spec.type}, which mloop cannot serve "
                "(supported: floats, integers, booleans, strings)"
            )
        return cls([Feature(str(i), type_name) for i in range(width)], tensor=shape)

    def with_dates(self, names: Sequence[str]) -> InputSchema:
        """This schema with the string columns in `names` read as ISO 8601 dates."""
        wanted = set(names)
        if not wanted & {f.name for f in self.features if f.type == "string"}:
            return self
        features = [
            replace(f, date=True) if f.name in wanted and f.type == "string" else f
            for f in self.features
        ]
        schema = InputSchema(features, tensor=self.tensor)
        schema.contract_check = self.contract_check
        return schema

    def with_contract(self, check: Any) -> InputSchema:
        """This schema also enforcing a compiled feature contract (`ContractCheck`, or None):
        `validate` then refuses rows breaking a `reject` rule and flags `count` ones."""
        schema = copy.copy(self)
        schema.contract_check = check
        return schema

    def model_input(self, frame: pd.DataFrame) -> Any:
        """What the model is called with: the frame, or for a tensor signature its array."""
        if self.tensor is None:
            return frame
        array = frame.to_numpy()
        return array.ravel() if len(self.tensor) == 1 else array

    def __len__(self) -> int:
        return len(self.features)

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.features]

    # -- validation --------------------------------------------------------------------------

    def to_frame(self, rows: Sequence[Any], *, row_offset: int = 0) -> pd.DataFrame:
        """Validate `rows` and return a DataFrame with the signature's columns and dtypes.

        `row_offset` is added to row indexes in error messages (for rows taken from a larger
        batch). Raises ValidationError naming the row and the feature at the first problem.
        """
        return self.frame([self.validate(rows, row_offset=row_offset)])

    def validate(self, rows: Sequence[Any], *, row_offset: int = 0) -> Columns:
        """Validate `rows` into typed column arrays, without building a DataFrame.

        The batcher validates each request on its own (a bad row fails only its request) and
        builds one DataFrame per model call from the validated parts (`frame`).
        """
        if not isinstance(rows, list | tuple):
            raise ValidationError("rows must be a list of objects or arrays")
        if self._all_float and len(rows) <= 64:
            fast = self._float_rows(rows)
            if fast is not None:
                return self._contract(fast, row_offset)
        elif self._checks is not None and len(rows) <= _PLAIN_ROWS:
            plain = self._plain_rows(rows)
            if plain is not None:
                return self._contract_plain(plain, row_offset)
        return self.validate_columns(rows, row_offset=row_offset)

    def validate_columns(self, rows: Sequence[Any], *, row_offset: int = 0) -> Columns:
        """`validate` column by column (numpy per column): any size, and the error path that
        names the first problem; small requests reach it only when something is unusual."""
        if not isinstance(rows, list | tuple):
            raise ValidationError("rows must be a list of objects or arrays")
        columns = self._columns(rows, row_offset)
        arrays = [
            _convert(feature, columns[i], row_offset) for i, feature in enumerate(self.features)
        ]
        return self._contract(Columns(arrays, len(rows)), row_offset)

    def _contract(self, part: Columns, row_offset: int) -> Columns:
        """The feature contract's rules on validated rows (nothing without a contract)."""
        if self.contract_check is not None:
            part.flags = self.contract_check.check(part.arrays, row_offset)
        return part

    def _contract_plain(self, part: Columns, row_offset: int) -> Columns:
        """`_contract` on a plain part, on its Python values when the rules allow it."""
        check = self.contract_check
        if check is None:
            return part
        if check.plain(self._texts):
            part.flags = check.check_lists(part.lists, self._numbers, row_offset)  # type: ignore[arg-type]
            return part
        return self._contract(part, row_offset)

    def frame(self, parts: Sequence[Columns]) -> pd.DataFrame:
        """One DataFrame from validated parts, in order (the rows of every part, stacked).

        All-double signatures get one float64 block (a view of the stacked rows): about 7 us
        for a model call's frame instead of about 190 us for twenty separate columns.
        """
        if self._all_float:
            matrices = [p.matrix if p.matrix is not None else _stack(p.arrays) for p in parts]
            matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            return pd.DataFrame(matrix, columns=self._index, copy=False)
        lists = [p.lists for p in parts]
        if all(part is not None for part in lists):  # plain parts: one array a column, here
            chain = itertools.chain.from_iterable
            width = len(self.features)
            arrays = self._typed([list(chain(part[i] for part in lists)) for i in range(width)])  # type: ignore[index]
        elif len(parts) == 1:
            arrays = parts[0].arrays
        else:
            arrays = [_concat([p.arrays[i] for p in parts]) for i in range(len(self.features))]
        arrays = [
            pd.array(a, dtype="str") if i in self._strings else a for i, a in enumerate(arrays)
        ]
        return pd.DataFrame(dict(zip(self.names, arrays, strict=True)), columns=list(self.names))

    def row_as_dict(self, row: Any) -> dict[str, Any]:
        """A validated row (dict or list) as a dict by column name."""
        return row if isinstance(row, dict) else dict(zip(self.names, row, strict=True))

    def _float_rows(self, rows: Sequence[Any]) -> Columns | None:
        """All-double signatures: rows of plain finite numbers in one numpy call.

        None when anything is unusual (a null, a bool, a string, a missing or extra key, NaN);
        the column-wise path then finds and names the problem.
        """
        names = self.names
        width = len(names)
        matrix = []
        total = 0.0
        for row in rows:
            values = _row_values(row, names, width)
            if values is None:
                return None
            if not _PLAIN_NUMBERS.issuperset(map(type, values)):
                return None
            try:
                total += sum(values)  # NaN or infinity anywhere makes the sum non-finite
            except OverflowError:  # an integer too large for a float
                return None
            matrix.append(values)
        try:
            array = np.array(matrix, dtype=np.float64)
        except OverflowError:
            return None
        # A finite sum proves every value finite; a sum that overflowed needs the full check.
        if not math.isfinite(total) and not np.isfinite(array).all():
            return None
        return Columns(None, len(rows), array)

    def _plain_rows(self, rows: Sequence[Any]) -> Columns | None:
        """A few rows checked value by value; None at anything unusual (a wrong type, a null
        refused, NaN, a missing or extra key...): `validate_columns` then names the problem."""
        names = self.names
        width = len(names)
        checks = self._checks
        lists: list[list[Any]] = [[] for _ in range(width)]
        for row in rows:
            values = _row_values(row, names, width)
            if values is None:
                return None
            for check, value, column in zip(checks, values, lists, strict=True):  # type: ignore[arg-type]
                if not check(value):
                    return None
                column.append(value)
        return Columns(None, len(rows), lists=lists, typed=self._typed)

    def _typed(self, lists: list[list[Any]]) -> list[Any]:
        """Typed column arrays of values `_plain_rows` accepted: what `_convert` makes of them."""
        return [_typed(f, values) for f, values in zip(self.features, lists, strict=True)]

    def _columns(self, rows: Sequence[Any], offset: int) -> list[list[Any]]:
        """Check every row's shape, then transpose the rows into one value list per column."""
        width = len(self.names)
        names = self.names
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                if row.keys() != self._name_set:
                    self._key_error(row, offset + i)
            elif isinstance(row, list | tuple):
                if len(row) != width:
                    raise ValidationError(
                        f"row {offset + i}: expected {width} values in signature order "
                        f"({', '.join(names)}), got {len(row)}"
                    )
            else:
                raise ValidationError(
                    f"row {offset + i}: must be an object or an array, got {describe_value(row)}"
                )
        columns: list[list[Any]] = []
        for j, name in enumerate(names):
            columns.append([row[name] if isinstance(row, dict) else row[j] for row in rows])
        return columns

    def _key_error(self, row: dict[str, Any], index: int) -> None:
        missing = [n for n in self.names if n not in row]
        unknown = [k for k in row if k not in self._name_set]
        problems = []
        # A wrong value among the features sent is named first: it is what was sent.
        for feature in self.features:
            if feature.name in row:
                try:
                    _convert(feature, [row[feature.name]], index)
                except ValidationError as exc:
                    problems.append(exc.message.removeprefix(f"row {index}: "))
        if missing:
            problems.append(f"missing feature {', '.join(repr(m) for m in missing)}")
        if unknown:
            problems.append(f"unknown feature {', '.join(repr(u) for u in unknown)}")
        raise ValidationError(
            f"row {index}: {'; '.join(problems)}",
            hint=f"expected features: {', '.join(self.names)}",
        )


class Columns:
    """Validated rows as one typed array per signature column (numpy or pandas arrays).

    `matrix`: the same values as one rows x columns float64 array, when they came as one (the
    all-double fast path); `arrays` are then views of its columns, made when first asked for.
    `lists`: the values as one Python list per column, when a few rows were checked in plain
    Python (`InputSchema._plain_rows`); `typed` makes the arrays of them when asked for, and
    `InputSchema.frame` makes them once for a whole batch instead.
    """

    __slots__ = ("_arrays", "rows", "matrix", "lists", "_typed", "flags")

    def __init__(
        self,
        arrays: list[Any] | None,
        rows: int,
        matrix: np.ndarray | None = None,
        *,
        lists: list[list[Any]] | None = None,
        typed: Callable[[list[list[Any]]], list[Any]] | None = None,
    ):
        if arrays is None and matrix is None and (lists is None or typed is None):
            raise ValueError("Columns needs arrays, a matrix, or lists and their typing")
        self._arrays = arrays
        self.rows = rows
        self.matrix = matrix
        self.lists = lists
        self._typed = typed
        # Rows accepted although out of the declared range (`contract_check.Flags`), or None.
        self.flags: Any = None

    @property
    def arrays(self) -> list[Any]:
        if self._arrays is None:
            if self.matrix is not None:
                self._arrays = list(self.matrix.T)
            else:
                self._arrays = self._typed(self.lists)  # type: ignore[misc, arg-type]
        return self._arrays

    def __len__(self) -> int:
        return self.rows

    def take(self, indices: Sequence[int]) -> Columns:
        """The rows at `indices` (e.g. the cache misses of a request)."""
        positions = np.asarray(indices, dtype=np.intp)
        if self.matrix is not None:
            part = Columns(None, len(positions), self.matrix[positions])
        elif self.lists is not None:
            chosen = positions.tolist()
            lists = [[column[i] for i in chosen] for column in self.lists]
            part = Columns(None, len(chosen), lists=lists, typed=self._typed)
        else:
            part = Columns([a[positions] for a in self.arrays], len(positions))
        if self.flags is not None:
            part.flags = self.flags.take(positions)
        return part


def _stack(arrays: list[Any]) -> np.ndarray:
    """Float64 column arrays as one rows x columns matrix."""
    return np.column_stack(arrays).astype(np.float64, copy=False)


def _concat(arrays: list[Any]) -> Any:
    """Stack column parts: numpy when every part is numpy, else through pandas."""
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np.concatenate(arrays)
    if all(isinstance(a, pd.DatetimeIndex) for a in arrays):
        return arrays[0].append(list(arrays[1:]))
    return pd.concat([pd.Series(a) for a in arrays], ignore_index=True).array


def _convert(feature: Feature, values: list[Any], offset: int) -> Any:
    """Validate one column's values and return them as a numpy array (or pandas array)."""
    kind, dtype = _KINDS[feature.type]
    types = set(map(type, values))
    has_null = type(None) in types
    if has_null and feature.required:
        index = next(i for i, v in enumerate(values) if v is None)
        raise ValidationError(f"row {offset + index}: feature {feature.name!r} is required")
    types.discard(type(None))
    if kind == _NUMBER:
        return _numbers(feature, values, types, dtype, has_null, offset)
    if kind == _INTEGER:
        return _integers(feature, values, types, dtype, has_null, offset)
    if kind == _BOOLEAN:
        _only(feature, values, types, {bool}, "a boolean", offset)
        if has_null:
            return pd.array(values, dtype="boolean")
        return np.array(values, dtype=np.bool_)
    if kind == _STRING:
        _only(feature, values, types, {str}, "a string", offset)
        if feature.date:
            _dates_parse(feature, values, offset)
        # Plain objects here (a request's rows); `frame` makes the batch's string arrays once.
        return np.array(values, dtype=object)
    return _datetimes(feature, values, types, offset)


def _plain_check(feature: Feature) -> Callable[[Any], bool] | None:
    """What `_plain_rows` accepts for one feature: values `_convert` takes as they are, as a
    test that is true for them (None for the datetime type, which only pandas parses)."""
    kind, dtype = _KINDS[feature.type]
    optional = not feature.required
    if kind == _NUMBER:
        limit = _FLOAT32_MAX if dtype is np.float32 else sys.float_info.max

        def number(v: Any) -> bool:
            kind = type(v)
            if kind is float:
                return -limit <= v <= limit  # NaN and the infinities fail the test
            if kind is int:
                return -_HUGE < v < _HUGE and -limit <= v <= limit
            return v is None and optional

        return number
    if kind == _INTEGER:
        low, high = _INT_BOUNDS[dtype]

        def integer(v: Any) -> bool:
            kind = type(v)
            if kind is int:
                return low <= v <= high
            if kind is float:
                return math.isfinite(v) and v.is_integer() and low <= v <= high
            return v is None and optional

        return integer
    if kind == _BOOLEAN:
        return lambda v: type(v) is bool or (v is None and optional)
    if kind == _STRING:
        if feature.date:
            return lambda v: (type(v) is str and _plain_date(v)) or (v is None and optional)
        return lambda v: type(v) is str or (v is None and optional)
    return None


def _plain_date(text: str) -> bool:
    """A plain ISO 8601 date or date-time without a zone (`_PLAIN_DATE`) that exists."""
    if _PLAIN_DATE.fullmatch(text) is None:
        return False
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _number_of(feature: Feature) -> Callable[[list[Any]], list[Any]] | None:
    """For a number column, a function giving its validated values as its typed array holds
    them (`_typed(...).tolist()`, without the array); None for other columns."""
    kind, dtype = _KINDS[feature.type]
    if kind == _NUMBER and dtype is np.float32:
        return lambda values: [math.nan if v is None else float(np.float32(v)) for v in values]
    if kind == _NUMBER:
        return lambda values: [math.nan if v is None else float(v) for v in values]
    if kind == _INTEGER:
        return _integer_items
    return None


def _integer_items(values: list[Any]) -> list[Any]:
    """An integer column's values as `_typed` holds them: ints, or floats when one is null."""
    if None in values:
        return [math.nan if v is None else float(v) for v in values]
    return [int(v) for v in values]


def _typed(feature: Feature, values: list[Any]) -> Any:
    """The typed array of one column's validated values (nulls allowed where optional)."""
    kind, dtype = _KINDS[feature.type]
    has_null = None in values
    if kind == _NUMBER:
        filled = [math.nan if v is None else v for v in values] if has_null else values
        array = np.array(filled, dtype=np.float64)
        return array.astype(np.float32) if dtype is np.float32 else array
    if kind == _INTEGER:
        if has_null:
            return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=dtype)
    if kind == _BOOLEAN:
        if has_null:
            return pd.array(values, dtype="boolean")
        return np.array(values, dtype=np.bool_)
    return np.array(values, dtype=object)  # strings (and date strings): `frame` types them


def _numbers(feature, values, types, dtype, has_null, offset) -> np.ndarray:
    _only(feature, values, types, {int, float}, "a number", offset)
    filled = [math.nan if v is None else v for v in values] if has_null else values
    try:
        array = np.array(filled, dtype=np.float64)
    except OverflowError:
        _out_of_range(feature, values, lambda v: isinstance(v, int) and abs(v) > 2**1023, offset)
        raise
    # Where nulls became NaN, look at the values as received; otherwise numpy says it at once.
    if float in types and (has_null or not np.isfinite(array).all()):
        _finite(feature, values, offset)
    if dtype is np.float32:
        if (np.abs(array[np.isfinite(array)]) > _FLOAT32_MAX).any():
            _out_of_range(feature, values, lambda v: abs(v) > _FLOAT32_MAX, offset)
        return array.astype(np.float32)
    return array


def _integers(feature, values, types, dtype, has_null, offset) -> np.ndarray:
    _only(feature, values, types, {int, float}, "an integer", offset)
    low, high = _INT_BOUNDS[dtype]
    if float in types:
        _finite(feature, values, offset)
        for i, v in enumerate(values):
            if isinstance(v, float) and not v.is_integer():
                raise ValidationError(
                    f"row {offset + i}: feature {feature.name!r} expects an integer, "
                    f"got {v!r} (a fraction)"
                )
        _out_of_range(feature, values, lambda v: v is not None and not low <= v <= high, offset)
    if has_null:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    try:
        return np.array(values, dtype=dtype)
    except OverflowError:
        _out_of_range(feature, values, lambda v: not low <= v <= high, offset)
        raise


def _datetimes(feature, values, types, offset) -> pd.DatetimeIndex:
    _only(feature, values, types, {str}, "an ISO 8601 date string", offset)
    return _dates_parse(feature, values, offset)


def _row_values(row: Any, names: tuple[str, ...], width: int) -> list[Any] | None:
    """A row's values in schema order: an exact dict of the names, or a list of `width`;
    None for anything else (a missing or extra key, another shape)."""
    if type(row) is dict:
        if len(row) != width:
            return None
        try:
            return [row[n] for n in names]
        except KeyError:
            return None
    if type(row) is list and len(row) == width:
        return row
    return None


def _dates_parse(feature, values, offset) -> pd.DatetimeIndex:
    """The values parsed as ISO 8601 dates; ValidationError at the first that is not one."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))
    except (ValueError, TypeError):
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                pd.to_datetime(v, format="ISO8601")
            except (ValueError, TypeError):
                raise ValidationError(
                    f"row {offset + i}: feature {feature.name!r} expects an ISO 8601 date, "
                    f"got {v!r}"
                ) from None
        # Each value is a date, together they are not one column: time zones that differ.
        raise ValidationError(
            f"feature {feature.name!r}: the dates mix time zones (or dates with and without "
            "one) in one request",
            hint="send every date of a request in the same time zone, or all without one",
        ) from None


def _only(feature: Feature, values, types, allowed: set[type], expected: str, offset) -> None:
    """Raise at the first value whose type is not in `allowed` (bool is never a number)."""
    if types <= allowed:
        return
    for i, v in enumerate(values):
        if v is not None and type(v) not in allowed:
            raise ValidationError(
                f"row {offset + i}: feature {feature.name!r} expects {expected}, "
                f"got {describe_value(v)}"
            )


def _finite(feature: Feature, values: list[Any], offset: int) -> None:
    """Raise at the first NaN or Infinity among the values as received."""
    for i, v in enumerate(values):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValidationError(
                f"row {offset + i}: feature {feature.name!r} is {describe_value(v)}, which is not "
                "allowed (send null for a missing value where the feature is optional)"
            )


def _out_of_range(feature: Feature, values: list[Any], test, offset: int) -> None:
    """Raise for the first value for which `test` is true."""
    for i, v in enumerate(values):
        if v is not None and test(v):
            raise ValidationError(
                f"row {offset + i}: feature {feature.name!r} is out of range for {feature.type}"
            )


def describe_value(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__
