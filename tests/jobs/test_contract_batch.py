"""Batch scoring enforces the model's features.yaml: rows breaking a reject rule go to the
rejects file with the reason; rows breaking a count rule are scored."""

from __future__ import annotations

import pandas as pd
import pytest

from mloop.jobs.batch import batch_predict
from mloop.model.table import check_chunk
from mloop.registry.resolve import load_model
from tests.support import modelkit
from tests.support.contractkit import log_contract

NAME = "guarded"


@pytest.fixture(scope="module")
def guarded(jobs_model, tmp_path_factory):
    trained = modelkit.train_and_register(jobs_model.settings, name=NAME)
    log_contract(NAME, tmp_path_factory.mktemp("contract"))
    return trained


@pytest.fixture(scope="module")
def model(guarded):
    return load_model(f"{NAME}@production", guarded.settings)


@pytest.fixture(scope="module")
def table():
    frame, _ = modelkit.make_frame(300, seed=3)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    return frame


def test_rows_outside_the_contract_go_to_rejects_with_the_bound(guarded, model, table, tmp_path):
    dirty = table.copy().astype({"support_calls": object})
    dirty.loc[3, "tenure"] = -5.0
    dirty.loc[40, "plan"] = "gold"
    dirty.loc[41, "support_calls"] = 99
    dirty.loc[42, "charges"] = 900.0  # a count rule: scored
    dirty.loc[150, "support_calls"] = "many"  # a type error still reads as one
    source = tmp_path / "in.csv"
    dirty.to_csv(source, index=False)
    summary = batch_predict(
        f"{NAME}@production",
        source,
        tmp_path / "out.csv",
        settings=guarded.settings,
        chunk_rows=100,
        model=model,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (300, 296, 4)
    rejects = pd.read_csv(summary.rejects)
    assert rejects["customer_id"].tolist() == ["c0003", "c0040", "c0041", "c0150"]
    reasons = rejects["reason"].tolist()
    assert reasons[0] == "tenure=-5 is below the declared minimum 0"
    assert reasons[1].startswith("plan='gold' is not one of the allowed values")
    assert reasons[2] == "support_calls=99 is above the declared maximum 20"
    assert reasons[3] == "feature 'support_calls' expects an integer, got 'many'"
    scored = pd.read_csv(tmp_path / "out.csv")
    assert "c0042" in set(scored["customer_id"])


def test_the_chunk_check_flags_count_rules_and_skips_models_without_a_contract(
    jobs_model, model, table
):
    frame = table.drop(columns="customer_id").head(10).copy()
    frame.loc[2, "charges"] = 500.0
    frame.loc[4, "charges"] = 1.0
    checked = check_chunk(model.schema, frame)
    assert checked.rejected == 0 and checked.flagged == 2
    frame.loc[5, "tenure"] = 1000.0
    plain = load_model("churn@production", jobs_model.settings)
    assert plain.contract is None
    assert check_chunk(plain.schema, frame).rejected == 0
    assert check_chunk(model.schema, frame).rejected == 1
