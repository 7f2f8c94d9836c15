"""Training-data validation with pandera: each check with bad data, the report files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mloop.errors import ValidationError
from mloop.features.contract import FeatureContract, FeatureRule
from mloop.features.validation import check_overlap, validate_frame

RULES = (
    FeatureRule("tenure", "integer", min=0, max=72),
    FeatureRule("charges", "number", nullable=True, min=10, max=120),
    FeatureRule("plan", "category", allowed=("basic", "plus", "pro")),
)
CONTRACT = FeatureContract(features=RULES, target="churned")


def good(rows: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 73, rows),
            "charges": rng.uniform(10, 120, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "churned": rng.integers(0, 2, rows),
        }
    )


def failures(frame: pd.DataFrame, contract: FeatureContract = CONTRACT, **kw) -> dict:
    report = validate_frame(frame, contract, **kw)
    return {(f.check, f.column): f for f in report.failures}


def test_clean_data_passes_every_check():
    report = validate_frame(good(), CONTRACT)
    assert report.ok and report.failures == [], report.to_json()
    assert {"schema", "type", "null", "min", "max", "allowed", "label_leakage"} <= set(
        report.checks_run
    )


def test_contract_rules_with_bad_data_are_errors_with_counts_and_examples():
    frame = good().astype({"tenure": object, "plan": object})
    frame.loc[[3, 9], "tenure"] = -1
    frame.loc[4, "tenure"] = 99
    frame.loc[5, "tenure"] = "ten"
    frame.loc[6, "tenure"] = None
    frame.loc[[7, 8, 11], "plan"] = "gold"
    frame.loc[10, "charges"] = 500.0
    found = failures(frame)
    assert found[("min", "tenure")].count == 2
    assert found[("min", "tenure")].examples[0]["data_row"] == 4
    assert found[("min", "tenure")].examples[0]["tenure"] == -1
    assert "below the declared minimum 0" in found[("min", "tenure")].message
    assert found[("max", "tenure")].count == 1
    assert found[("type", "tenure")].count == 1
    assert found[("null", "tenure")].count == 1
    assert found[("allowed", "plan")].count == 3
    assert "'gold' is not one of the allowed values" in found[("allowed", "plan")].message
    assert found[("max", "charges")].count == 1
    assert all(f.level == "error" for f in found.values())


def test_missing_declared_column_and_undeclared_column():
    frame = good().drop(columns=["charges"]).assign(extra=1.0, customer_id=range(200))
    found = failures(frame, ignore=["customer_id"])
    assert found[("schema", "charges")].level == "error"
    assert "'charges' is not in the data" in found[("schema", "charges")].message
    undeclared = found[("undeclared_column", None)]
    assert undeclared.level == "warning" and "extra" in undeclared.message
    assert "customer_id" not in undeclared.message


def test_duplicate_rows_and_constant_column_are_warnings():
    frame = good()
    frame = pd.concat([frame, frame.iloc[[1, 2]]], ignore_index=True)
    frame["plan"] = "pro"
    found = failures(frame)
    dup = found[("duplicate_rows", None)]
    assert dup.level == "warning" and dup.count >= 2
    assert dup.examples and "data_row" in dup.examples[0]
    assert found[("constant_column", "plan")].level == "warning"
    assert validate_frame(frame, CONTRACT).ok  # warnings only


def test_label_balance_and_single_class():
    frame = good(400)
    frame["churned"] = 0
    frame.loc[:5, "churned"] = 1  # 6 of 400: 1.5%
    found = failures(frame)
    balance = found[("label_balance", "churned")]
    assert balance.level == "warning" and "1.5%" in balance.message
    assert {"class": 1, "rows": 6} in balance.examples
    frame["churned"] = 1
    assert failures(frame)[("label_single_class", "churned")].level == "error"


def test_label_leakage_numeric_categorical_and_regression():
    frame = good(300)
    frame["tenure"] = np.where(frame["churned"] == 1, 60, 5) + np.arange(300) % 3
    frame["plan"] = np.where(frame["churned"] == 1, "pro", "basic")
    found = failures(frame)
    assert "single-feature AUC 1.000" in found[("label_leakage", "tenure")].message
    assert "maps to a single label" in found[("label_leakage", "plan")].message
    assert found[("label_leakage", "tenure")].level == "error"
    assert ("label_leakage", "charges") not in found
    regression = FeatureContract(features=RULES[:2], target="spend")
    frame = good(300).drop(columns=["churned"])
    frame["spend"] = frame["charges"] * 12.5 + 3
    leak = failures(frame, regression)[("label_leakage", "charges")]
    assert "rank correlation 1.000" in leak.message


def test_an_id_column_is_not_leakage():
    contract = FeatureContract(features=(*RULES, FeatureRule("code", "string")), target="churned")
    frame = good().assign(code=[f"c{i}" for i in range(200)])
    assert ("label_leakage", "code") not in failures(frame, contract)


def test_train_test_overlap():
    frame = good(100)
    train, test = frame.iloc[:80], pd.concat([frame.iloc[80:], frame.iloc[[1, 2, 3]]])
    overlap = check_overlap(train, test)
    assert overlap is not None and overlap.count == 3 and overlap.level == "warning"
    assert "3 of 23 test row(s)" in overlap.message and len(overlap.examples) == 3
    assert check_overlap(frame.iloc[:80], frame.iloc[80:]) is None


def test_report_files_and_the_error_names_them(tmp_path):
    frame = good()
    frame.loc[0, "tenure"] = -5
    report = validate_frame(frame, CONTRACT, source="train.csv")
    json_path, html_path = report.write(tmp_path / "reports", "train")
    body = json.loads(json_path.read_text())
    assert body["ok"] is False and body["errors"] == 1
    assert body["failures"][0]["check"] == "min" and body["failures"][0]["examples"]
    html = html_path.read_text()
    assert "<table>" in html and "tenure=-5 is below the declared minimum 0" in html
    with pytest.raises(ValidationError, match="tenure=-5 is below") as info:
        report.raise_for_errors()
    assert str(json_path) in info.value.message


def test_without_target_column_the_label_checks_are_skipped():
    frame = good().drop(columns=["churned"])
    assert ("schema", "churned") in failures(frame)
    assert failures(frame, require_target=False) == {}
