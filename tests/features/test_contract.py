"""features.yaml: strict loading, round trips, inference, and `check_rows` on bad values."""

from __future__ import annotations

import pandas as pd
import pytest

from mloop.errors import ConfigError, ValidationError
from mloop.features.contract import (
    CONTRACT_ARTIFACT,
    FeatureContract,
    FeatureRule,
    Violation,
    check_rows,
)

CONTRACT = FeatureContract(
    features=(
        FeatureRule("tenure_months", "integer", min=0, max=72, unit="months"),
        FeatureRule("charges", "number", nullable=True, min=10, max=120, policy="count"),
        FeatureRule("plan", "category", allowed=("basic", "pro")),
        FeatureRule("promo", "boolean"),
        FeatureRule("signup", "date"),
        FeatureRule("note", "string", nullable=True, used_in="training"),
        FeatureRule("session", "string", used_in="serving", source="sessions:length"),
    ),
    target="churned",
    entity_key="customer_id",
    derived=({"name": "numeric", "from": ["tenure_months"], "kind": "scale"},),
    feast={"repo": "feature_repo", "features": ["sessions:length"]},
)


def test_yaml_round_trip_and_file(tmp_path):
    assert CONTRACT_ARTIFACT == "features.yaml"
    assert FeatureContract.from_yaml(CONTRACT.to_yaml()) == CONTRACT
    path = CONTRACT.dump(tmp_path / "features.yaml")
    loaded = FeatureContract.load(path)
    assert loaded == CONTRACT
    assert loaded.rule("charges").policy == "count" and loaded.rule("nope") is None
    assert [r.name for r in loaded.serving_features()] == [
        "tenure_months", "charges", "plan", "promo", "signup", "session",
    ]  # fmt: skip
    assert "min: 0" in CONTRACT.to_yaml() and "min: 0.0" not in CONTRACT.to_yaml()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"features": {"a": {"type": "number", "mni": 0}}}, "unknown key 'features.a.mni'"),
        ({"featurez": {}}, "unknown key 'featurez'"),
        ({"features": {"a": {"type": "float"}}}, "features.a.type"),
        ({"features": {"a": {"type": "number", "min": "low"}}}, "features.a.min"),
        ({"features": {"a": {"type": "number", "min": 5, "max": 1}}}, "min 5.0 is above max 1.0"),
        ({"features": {"a": {"type": "category", "min": 1}}}, "min/max apply to number"),
        ({"features": {"a": {"type": "number", "policy": "drop"}}}, "features.a.policy"),
        ({"features": {"a": {"type": "number", "used_in": "never"}}}, "features.a.used_in"),
        ({"features": {}}, "features"),
        ({"policy": "reject"}, "features"),
        ({"target": "a", "features": {"a": {"type": "number"}}}, "also declared as a feature"),
        ({"features": {"a": {"type": "number"}}, "feast": {"repo": "r"}}, "exactly one of"),
        ({"features": {"a": {"type": "number"}}, "version": 2}, "version"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_contracts_name_the_key(data, fragment):
    with pytest.raises(ValidationError, match="features.yaml") as info:
        FeatureContract.from_dict(data)
    assert fragment in info.value.message


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="invalid YAML at line"):
        FeatureContract.from_yaml("features: {a: [1,\n")
    with pytest.raises(ConfigError, match="does not exist") as info:
        FeatureContract.load(tmp_path / "nope.yaml")
    assert "mloop features infer" in info.value.hint


def test_infer_types_ranges_categories():
    frame = pd.DataFrame(
        {
            "id": ["c1", "c2", "c3", "c4"],
            "tenure": [1, 5, 9, 3],
            "charge": [10.5, None, 30.25, 12.0],
            "plan": ["basic", "pro", "basic", "pro"],
            "flag": [True, False, True, True],
            "day": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"],
            "y": [0, 1, 0, 1],
        }
    )
    contract = FeatureContract.infer(frame, target="y", entity_key="id")
    assert contract.names == ["tenure", "charge", "plan", "flag", "day"]
    assert contract.rule("tenure") == FeatureRule("tenure", "integer", min=1, max=9)
    assert contract.rule("charge") == FeatureRule("charge", "number", True, 10.5, 30.25)
    assert contract.rule("plan").allowed == ("basic", "pro")
    assert contract.rule("flag").type == "boolean" and contract.rule("day").type == "date"
    assert check_rows(contract, frame) == []
    empty = FeatureContract.infer(pd.DataFrame({"a": [None, None], "b": [float("nan")] * 2}))
    assert FeatureContract.from_yaml(empty.to_yaml()) == empty
    assert empty.rule("a") == FeatureRule("a", "string", nullable=True)
    with pytest.raises(ValidationError, match="target column 'label'"):
        FeatureContract.infer(frame, target="label")


def test_every_rule_with_bad_values():
    frame = pd.DataFrame(
        {
            "tenure_months": [-3, 80, "x", 2.5, None, 10],
            "charges": [5, 130, None, 50, 50, 50],
            "plan": ["basic", "gold", "pro", None, "pro", "pro"],
            "promo": [True, "maybe", False, 1, "no", True],
            "signup": ["2024-01-01", "soon", "2024-01-03", "2024-01-04", None, "2024-01-06"],
        },
        dtype=object,
    )
    found = {(v.feature, v.row, v.rule) for v in check_rows(CONTRACT, frame)}
    assert found == {
        ("tenure_months", 0, "min"),
        ("tenure_months", 1, "max"),
        ("tenure_months", 2, "type"),
        ("tenure_months", 3, "type"),
        ("tenure_months", 4, "null"),
        ("charges", 0, "min"),
        ("charges", 1, "max"),
        ("plan", 1, "allowed"),
        ("plan", 3, "null"),
        ("promo", 1, "type"),
        ("signup", 1, "type"),
        ("signup", 4, "null"),
    }
    by_key = {(v.feature, v.row): v for v in check_rows(CONTRACT, frame)}
    assert by_key[("charges", 0)].policy == "count"
    assert by_key[("tenure_months", 0)].policy == "reject"
    assert by_key[("tenure_months", 0)].message() == (
        "tenure_months=-3 is below the declared minimum 0"
    )
    assert by_key[("tenure_months", 1)].message() == (
        "tenure_months=80 is above the declared maximum 72"
    )
    assert "'gold' is not one of the allowed values ['basic', 'pro']" in (
        by_key[("plan", 1)].message()
    )
    assert by_key[("plan", 3)].message().startswith("plan is null")
    assert by_key[("promo", 1)].to_dict()["rule"] == "type"


def test_numeric_columns_and_absent_columns():
    frame = pd.DataFrame({"tenure_months": [0, 72, 73], "charges": [10.0, float("nan"), 121.0]})
    violations = check_rows(CONTRACT, frame)  # plan, promo, signup absent: not reported here
    assert [(v.feature, v.row, v.rule) for v in violations] == [
        ("tenure_months", 2, "max"),
        ("charges", 2, "max"),
    ]
    assert isinstance(violations[0], Violation) and violations[0].bound == 72


def test_allowed_numbers_and_text_compare_by_value():
    contract = FeatureContract.from_dict(
        {
            "features": {
                "n": {"type": "integer", "allowed": [1, 2]},
                "s": {"type": "category", "allowed": ["1", "x"]},
            }
        }  # noqa: E501
    )
    frame = pd.DataFrame({"n": [1, 2.0, 3], "s": [1, "x", "y"]})
    assert [(v.feature, v.row) for v in check_rows(contract, frame)] == [("n", 2), ("s", 2)]
