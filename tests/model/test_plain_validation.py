"""A few rows validated in plain Python give what the column-wise path gives, value for value.

`InputSchema.validate` checks small requests value by value (`_plain_rows`, the contract by
`ContractCheck.check_lists`) and falls back to `validate_columns` at anything unusual. These
tests run both paths on the same rows (the churn generator's, with their missing values, and
each of them spoiled in the ways clients spoil rows) and compare what comes out: the same
error message and hint, or the same DataFrame (values and dtypes), flags and counts.
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from mloop.data.churn import generate_churn
from mloop.errors import ValidationError
from mloop.features.contract import FeatureContract, FeatureRule
from mloop.model.contract_check import ContractCheck
from mloop.model.schema import Feature, InputSchema, _plain_date


def _churn_schema(policy: str) -> tuple[InputSchema, list[dict]]:
    """The demo model's schema (signature, date column, inferred contract) and raw rows."""
    train = generate_churn(400, seed=42).drop(columns=["customer_id", "churn"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(train)
    contract = FeatureContract.infer(train, policy=policy)  # type: ignore[arg-type]
    schema = InputSchema.from_signature(signature).with_dates(["signup_date"])
    schema = schema.with_contract(ContractCheck(contract, schema.names))
    requests = generate_churn(60, seed=7, drift=True).drop(columns=["customer_id", "churn"])
    rows = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in requests.to_dict("records")
    ]
    return schema, rows


SPOILERS = [
    None,
    math.nan,
    math.inf,
    -math.inf,
    True,
    "12",
    "",
    2**70,
    2**1100,
    -1,
    10**6,
    3.5,
    0,
    "digital_wallet",
    "2024-02-30",
    "2024-01-01T10:00:00+01:00",
    "2024-01-01T10:00:00Z",
    "20240101",
    "2024-1-1",
    "2024-01-01 10:00",
    "٢٠٢٤-٠١-٠١",
    [],
    {},
]


def _outcome(validate, rows):
    """('error', message, hint) or ('ok', part); any other exception as its type and text
    (a request mixing time zones in a date column: pandas' ValueError, on both paths)."""
    try:
        return ("ok", validate(rows))
    except ValidationError as exc:
        return ("error", exc.message, exc.hint)
    except ValueError as exc:
        return ("error", type(exc).__name__, str(exc))


def _same(schema: InputSchema, rows: list) -> str:
    """Run both paths on `rows` and assert they agree; which one it was."""
    new = _outcome(schema.validate, rows)
    old = _outcome(schema.validate_columns, rows)
    assert new[0] == old[0], (rows, new, old)
    if new[0] == "error":
        assert new[1:] == old[1:], rows
        return "error"
    new_part, old_part = new[1], old[1]
    assert new_part.rows == old_part.rows == len(rows)
    pd.testing.assert_frame_equal(schema.frame([new_part]), schema.frame([old_part]))
    for new_array, old_array in zip(new_part.arrays, old_part.arrays, strict=True):
        assert new_array.dtype == old_array.dtype
    _same_flags(new_part.flags, old_part.flags)
    return "plain" if new_part.lists is not None else "columns"


def _same_flags(new, old) -> None:
    assert (new is None) == (old is None)
    if new is not None:
        assert new.reasons.tolist() == old.reasons.tolist()
        assert new.features == old.features


@pytest.mark.parametrize("policy", ["count", "reject"])
def test_churn_rows_and_spoiled_rows_give_the_same_answer_on_both_paths(policy):
    schema, rows = _churn_schema(policy)
    paths = {"plain": 0, "columns": 0, "error": 0}
    for row in rows:
        paths[_same(schema, [row])] += 1
        paths[_same(schema, [[row[n] for n in schema.names]])] += 1  # a row as a list
    for i, row in enumerate(rows[:4]):
        for name in schema.names:
            for value in SPOILERS:
                paths[_same(schema, [{**row, name: value}])] += 1
                if i == 0:  # and the spoiled row second in a request of three rows
                    paths[_same(schema, [rows[1], {**row, name: value}, rows[2]])] += 1
        missing = {k: v for k, v in row.items() if k != "region"}
        for spoiled in (missing, {**row, "shoe_size": 42}, [1, 2], "row", None, 3):
            paths[_same(schema, [spoiled])] += 1
    assert paths["plain"] > len(rows)  # the churn rows themselves take the plain path
    assert paths["error"] > 100 and paths["columns"] > 0  # and the spoiled ones both others


def test_a_batch_of_plain_parts_is_the_frame_of_the_column_wise_parts():
    schema, rows = _churn_schema("count")
    plain = [schema.validate([row]) for row in rows]
    columns = [schema.validate_columns([row]) for row in rows]
    assert all(p.lists is not None for p in plain)
    expected = schema.frame(columns)
    pd.testing.assert_frame_equal(schema.frame(plain), expected)
    mixed = [p if i % 3 else c for i, (p, c) in enumerate(zip(plain, columns, strict=True))]
    pd.testing.assert_frame_equal(schema.frame(mixed), expected)
    several = schema.validate(rows[:5])  # a request of a few rows, then some of its rows
    assert several.lists is not None
    pd.testing.assert_frame_equal(
        schema.frame([several.take([1, 3])]),
        schema.frame([schema.validate_columns(rows[:5]).take([1, 3])]),
    )


def _typed_schema() -> InputSchema:
    """Every column type the plain path takes, optional and required, with a contract."""
    features = [
        Feature("d", "double"),
        Feature("d_opt", "double", required=False),
        Feature("f32", "float"),
        Feature("i64", "long"),
        Feature("i64_opt", "long", required=False),
        Feature("i32", "integer"),
        Feature("flag", "boolean"),
        Feature("flag_opt", "boolean", required=False),
        Feature("text", "string"),
        Feature("day", "string", required=False),
    ]
    contract = FeatureContract(
        features=(
            FeatureRule("d", "number", min=0.0, max=100.0),
            FeatureRule("f32", "number", max=0.1, policy="reject"),
            FeatureRule("i64", "integer", min=-5, max=2**53),
            FeatureRule("i64_opt", "integer", max=10),
            FeatureRule("i32", "integer", allowed=(1, 2, 3)),  # allowed on numbers: numpy's
            FeatureRule("text", "category", allowed=("a", "b")),
        ),
        policy="count",
    )
    schema = InputSchema(features).with_dates(["day"])
    return schema.with_contract(ContractCheck(contract, schema.names))


VALUES = {
    "number": [0, 1, 2.5, -3, 99.9, 100.5, 0.1, 0.10000001, 1e39, 3.4e38, 2**53 + 1, 2**63],
    "integer": [0, 1, 3, 3.0, -7, 11, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2.5],
    "boolean": [True, False, 0, 1, "true"],
    "string": ["a", "b", "c", "", "2024-05-01", "2024-05-01T12:30:00.5", "2024-13-01"],
}
KINDS = {"double": "number", "float": "number", "long": "integer", "integer": "integer"}


def test_every_column_type_agrees_on_both_paths():
    schema = _typed_schema()
    base = {
        "d": 1.5,
        "d_opt": None,
        "f32": 0.05,
        "i64": 4,
        "i64_opt": None,
        "i32": 2,
        "flag": True,
        "flag_opt": None,
        "text": "a",
        "day": "2024-05-01",
    }
    # The values take the plain path; the `allowed` rule on numbers i32 is checked by numpy.
    assert not schema.contract_check.plain([f.type == "string" for f in schema.features])
    assert _same(schema, [base]) == "plain"
    plain = InputSchema(schema.features).with_dates(["day"])  # no contract: the plain path
    assert _same(plain, [base]) == "plain"
    generator = random.Random(19)
    for feature in schema.features:
        kind = KINDS.get(feature.type, feature.type)
        for value in [*VALUES[kind], *VALUES["string"][:2], None, math.nan, True]:
            for target in (schema, plain):
                _same(target, [{**base, feature.name: value}])
    for _ in range(150):  # random rows of valid and invalid values, one to three a request
        rows = []
        for _ in range(generator.randint(1, 3)):
            row = {}
            for feature in schema.features:
                kind = KINDS.get(feature.type, feature.type)
                pool = [*VALUES[kind], None] if generator.random() < 0.3 else [base[feature.name]]
                row[feature.name] = generator.choice(pool)
            rows.append(row)
        _same(schema, rows)
        _same(plain, rows)


def _random_date(generator: random.Random) -> str:
    """A string shaped like the plain date pattern, with digits that may make no date."""
    digits = lambda n: "".join(generator.choice("0123456789") for _ in range(n))  # noqa: E731
    month, day = generator.choice("01") + digits(1), generator.choice("0123") + digits(1)
    text = f"{digits(4)}-{month}-{day}"
    if generator.random() < 0.6:
        text += f"{generator.choice('T ')}{generator.choice('012')}{digits(1)}:{digits(2)}"
        if generator.random() < 0.6:
            text += f":{generator.choice('0123456')}{digits(1)}"
            if generator.random() < 0.5:
                text += "." + digits(generator.randint(1, 6))
    return text


def test_every_date_the_plain_path_accepts_pandas_parses_alone_and_together():
    generator = random.Random(7)
    accepted, refused = [], 0
    for _ in range(3000):
        text = _random_date(generator)
        if _plain_date(text):
            pd.to_datetime(text, format="ISO8601")  # raises if pandas refused it
            accepted.append(text)
        else:
            refused += 1
    assert len(accepted) > 500 and refused > 500
    parsed = pd.to_datetime(accepted, format="ISO8601")  # a batch mixing the shapes
    assert len(parsed) == len(accepted) and not parsed.isna().any()
    assert not _plain_date("2024-01-01T10:00:00+01:00")  # zones: pandas judges the batch
    assert not _plain_date("2024-01-01\n")


def test_float32_and_huge_integers_keep_their_array_values_in_the_reasons():
    schema = _typed_schema()
    row = {
        "d": 1.5,
        "d_opt": None,
        "f32": 0.1,  # float32(0.1) is above the max 0.1: refused, as numpy sees it
        "i64": 2**53 + 3,  # compared as float64 (2**53 + 4), shown as the int64 it is
        "i64_opt": None,
        "i32": 2,
        "flag": True,
        "flag_opt": None,
        "text": "a",
        "day": None,
    }
    plain = InputSchema(schema.features).with_dates(["day"])
    contract = schema.contract_check.contract
    without_numbers = FeatureContract(
        features=tuple(r for r in contract.features if r.name != "i32"), policy="count"
    )
    checked = plain.with_contract(ContractCheck(without_numbers, plain.names))
    with pytest.raises(ValidationError) as caught:
        checked.validate([row])
    assert caught.value.message.startswith("row 0: f32=0.10000000149011612 is above")
    assert _same(checked, [{**row, "f32": 0.05}]) == "plain"
    flags = checked.validate([{**row, "f32": 0.05}]).flags
    assert flags.reasons.tolist() == [
        "i64=9007199254740995 is above the declared maximum 9007199254740992"
    ]
    assert np.isnan(checked.frame([checked.validate([{**row, "f32": 0.05}])])["d_opt"][0])
