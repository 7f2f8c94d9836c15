"""InputSchema: rows in, typed DataFrame out, and a ValidationError naming row and field."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from mloop.errors import ValidationError
from mloop.model.schema import Feature, InputSchema


@pytest.fixture(scope="module")
def schema() -> InputSchema:
    frame = pd.DataFrame(
        {
            "tenure": [1.5, np.nan, 3.0],
            "calls": np.array([1, 2, 3], dtype=np.int64),
            "plan": ["basic", "pro", "plus"],
            "region": ["eu", None, "us"],
            "signup": ["2024-01-01", "2024-02-01", "2024-03-01"],
            "charges": [10.0, 20.0, 30.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns
        signature = infer_signature(frame, np.array([0, 1, 0]))
    return InputSchema.from_signature(signature)


GOOD = {
    "tenure": 12.5,
    "calls": 2,
    "plan": "basic",
    "region": "eu",
    "signup": "2024-05-01",
    "charges": 42,
}


def test_signature_marks_columns_with_missing_values_optional(schema):
    required = {f.name: f.required for f in schema.features}
    assert required == {
        "tenure": False,
        "calls": True,
        "plan": True,
        "region": False,
        "signup": True,
        "charges": True,
    }
    assert [f.type for f in schema.features] == [
        "double", "long", "string", "string", "string", "double"
    ]  # fmt: skip


def test_dict_and_list_rows_give_the_same_typed_frame(schema):
    as_list = [GOOD[name] for name in schema.names]
    frame = schema.to_frame([GOOD, as_list])
    assert list(frame.columns) == list(schema.names)
    assert frame["tenure"].dtype == np.float64
    assert frame["calls"].dtype == np.int64
    assert frame["charges"].dtype == np.float64  # an int JSON value in a double column
    assert frame.iloc[0].tolist() == frame.iloc[1].tolist()


def test_null_is_accepted_on_optional_columns(schema):
    frame = schema.to_frame([{**GOOD, "tenure": None, "region": None}, GOOD])
    assert math.isnan(frame["tenure"][0])
    assert frame["tenure"][1] == 12.5
    assert pd.isna(frame["region"][0])
    assert frame["region"][1] == "eu"


def test_integral_float_is_accepted_for_an_integer_column(schema):
    frame = schema.to_frame([{**GOOD, "calls": 3.0}])
    assert frame["calls"].dtype == np.int64
    assert frame["calls"][0] == 3


BAD = [
    ({k: v for k, v in GOOD.items() if k != "plan"}, "row 0: missing feature 'plan'"),
    ({**GOOD, "shoe_size": 42}, "row 0: unknown feature 'shoe_size'"),
    ({**GOOD, "charges": "lots"}, "feature 'charges' expects a number, got a string ('lots')"),
    ({**GOOD, "charges": True}, "feature 'charges' expects a number, got a boolean (true)"),
    ({**GOOD, "calls": False}, "feature 'calls' expects an integer, got a boolean"),
    ({**GOOD, "calls": 2.5}, "feature 'calls' expects an integer, got 2.5 (a fraction)"),
    ({**GOOD, "calls": 2**70}, "feature 'calls' is out of range for long"),
    ({**GOOD, "charges": float("nan")}, "feature 'charges' is NaN"),
    ({**GOOD, "tenure": float("nan")}, "feature 'tenure' is NaN"),
    ({**GOOD, "charges": float("inf")}, "feature 'charges' is Infinity"),
    ({**GOOD, "charges": float("-inf")}, "feature 'charges' is -Infinity"),
    ({**GOOD, "calls": float("inf")}, "feature 'calls' is Infinity"),
    ({**GOOD, "charges": None}, "row 0: feature 'charges' is required"),
    ({**GOOD, "plan": None}, "row 0: feature 'plan' is required"),
    ({**GOOD, "plan": 3}, "feature 'plan' expects a string, got a number (3)"),
    ({**GOOD, "plan": ["a"]}, "feature 'plan' expects a string, got an array"),
    ({**GOOD, "charges": {"v": 1}}, "feature 'charges' expects a number, got an object"),
    (["basic", 1], "row 0: expected 6 values in signature order"),
    ("basic", "row 0: must be an object or an array, got a string"),
    (None, "row 0: must be an object or an array, got null"),
]


@pytest.mark.parametrize(("row", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_rows_name_the_row_and_the_field(schema, row, message):
    with pytest.raises(ValidationError) as info:
        schema.to_frame([row])
    assert message in info.value.message


def test_the_row_index_counts_from_the_offset(schema):
    rows = [GOOD, GOOD, {**GOOD, "calls": "two"}]
    with pytest.raises(ValidationError, match=r"^row 2: feature 'calls'"):
        schema.to_frame(rows)
    with pytest.raises(ValidationError, match=r"^row 12: feature 'calls'"):
        schema.to_frame(rows, row_offset=10)


def test_missing_and_unknown_are_named_together_with_a_hint(schema):
    row = {k: v for k, v in GOOD.items() if k != "calls"} | {"call": 2}
    with pytest.raises(ValidationError) as info:
        schema.to_frame([row])
    assert info.value.message == "row 0: missing feature 'calls'; unknown feature 'call'"
    assert "expected features: tenure, calls" in info.value.hint


def test_rows_must_be_a_list(schema):
    with pytest.raises(ValidationError, match="rows must be a list"):
        schema.to_frame(GOOD)


def test_datetime_columns_parse_iso_dates_and_name_bad_ones():
    schema = InputSchema([Feature("day", "datetime"), Feature("x", "double")])
    frame = schema.to_frame([{"day": "2024-01-02", "x": 1.0}, ["2024-01-03T10:00:00", 2.0]])
    assert frame["day"].dt.day.tolist() == [2, 3]
    with pytest.raises(ValidationError, match=r"row 1: feature 'day' expects an ISO 8601 date"):
        schema.to_frame([["2024-01-02", 1.0], ["yesterday", 2.0]])


def test_dates_mixing_time_zones_in_one_request_are_refused_by_name():
    """Each date alone parses; together pandas refuses them (a bare ValueError before)."""
    schema = InputSchema([Feature("day", "datetime"), Feature("x", "double")])
    rows = [["2024-01-02T10:00:00+01:00", 1.0], ["2024-01-03T10:00:00", 2.0]]
    with pytest.raises(ValidationError, match=r"feature 'day': the dates mix time zones"):
        schema.to_frame(rows)


def test_float32_and_boolean_columns():
    schema = InputSchema([Feature("f", "float"), Feature("b", "boolean")])
    frame = schema.to_frame([[1.5, True], [2, False]])
    assert frame["f"].dtype == np.float32
    assert frame["b"].tolist() == [True, False]
    with pytest.raises(ValidationError, match="feature 'f' is out of range for float"):
        schema.to_frame([[1e300, True]])
    with pytest.raises(ValidationError, match="feature 'b' expects a boolean, got a number"):
        schema.to_frame([[1.0, 1]])


def test_unsupported_and_missing_signatures_are_refused():
    with pytest.raises(ValidationError, match="type 'binary'"):
        InputSchema([Feature("blob", "binary")])
    with pytest.raises(ValidationError, match="no input signature"):
        InputSchema.from_signature(None)
    images = infer_signature(np.zeros((2, 8, 8)), np.zeros(2))
    with pytest.raises(ValidationError, match=r"tensor of shape \(-1, 8, 8\)"):
        InputSchema.from_signature(images)


def test_a_tensor_signature_takes_positional_values_and_calls_with_the_array():
    schema = InputSchema.from_signature(infer_signature(np.zeros((2, 3)), np.zeros(2)))
    assert schema.names == ("0", "1", "2")
    assert schema.tensor == (-1, 3)
    frame = schema.to_frame([[1, 2.5, 3], {"0": 4.0, "1": 5.0, "2": 6.0}])
    array = schema.model_input(frame)
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]]
    with pytest.raises(ValidationError, match="expected 3 values in signature order"):
        schema.to_frame([[1.0, 2.0]])
    ints = InputSchema.from_signature(infer_signature(np.zeros((2, 2), dtype=np.int32)))
    assert [f.type for f in ints.features] == ["integer", "integer"]
    column = InputSchema.from_signature(infer_signature(np.zeros(4)))
    assert column.model_input(column.to_frame([[1.0], [2.0]])).tolist() == [1.0, 2.0]
