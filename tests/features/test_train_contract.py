"""Training with a features.yaml: validation first, errors stop it, the contract ships with it."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from mloop.data import generate_churn, write_table
from mloop.errors import ConfigError, ValidationError
from mloop.features.contract import CONTRACT_ARTIFACT, FeatureContract, FeatureRule
from mloop.pipeline.config import load_config
from mloop.pipeline.train import train

SMALL = "train:\n  params: {n_estimators: 10}\nevaluate:\n  cv_folds: 0\n"
SMALL += "register:\n  criteria: {}\n"


@pytest.fixture
def project(mloop_home, tmp_path):
    """A churn file, a config, and a features.yaml inferred from the file beside the config."""
    frame = generate_churn(600, seed=5)
    data = write_table(frame, tmp_path / "churn.csv")
    (tmp_path / "params.yaml").write_text(SMALL)
    contract = FeatureContract.infer(frame, target="churn", entity_key="customer_id")
    contract.dump(tmp_path / "features.yaml")
    return tmp_path, frame, data, contract


def run_artifact(run_id: str, path: str) -> str:
    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


def test_a_contract_beside_the_config_validates_and_ships_with_the_model(project):
    folder, _frame, data, contract = project
    config = load_config(folder / "params.yaml")
    assert config.contract == str((folder / "features.yaml").resolve())
    steps: list[str] = []
    result = train(data, config, on_step=steps.append)
    assert "validate" in steps and result.registered
    logged = FeatureContract.from_yaml(run_artifact(result.run_id, CONTRACT_ARTIFACT))
    assert logged.features == contract.features and logged.entity_key == "customer_id"
    assert {d["name"] for d in logged.derived} == {"numeric", "categorical", "date"}
    report = json.loads(run_artifact(result.run_id, "validation/report.json"))
    assert report["ok"] is True and "train_test_overlap" in report["checks_run"]
    assert "<html>" in run_artifact(result.run_id, "validation/report.html")
    tags = mlflow.get_run(result.run_id).data.tags
    assert tags["mloop.contract"] == "declared"
    assert tags["mloop.validation"] in ("passed", "warnings")


def test_data_outside_the_contract_stops_training_with_the_report(project, mloop_home):
    folder, frame, data, _contract = project
    frame.loc[7, "tenure_months"] = -3
    frame.loc[8, "contract_type"] = "lifetime"
    write_table(frame, data)
    with pytest.raises(
        ValidationError, match="tenure_months=-3 is below the declared minimum 0"
    ) as info:
        train(data, load_config(folder / "params.yaml"))
    path = Path(info.value.message.split("report: ")[1])
    body = json.loads(path.read_text())
    assert body["errors"] == 2
    assert {f["check"] for f in body["failures"]} == {"min", "allowed"}
    assert path.parent == mloop_home.home / "validation" and path.with_suffix(".html").is_file()
    mlflow.set_tracking_uri(mloop_home.tracking_uri)
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing was trained


def test_without_a_contract_the_model_carries_an_inferred_one(mloop_home, tmp_path):
    data = write_table(generate_churn(500, seed=2), tmp_path / "churn.csv")
    (tmp_path / "params.yaml").write_text(SMALL)
    config = load_config(tmp_path / "params.yaml")
    assert config.contract is None
    result = train(data, config)
    logged = FeatureContract.from_yaml(run_artifact(result.run_id, CONTRACT_ARTIFACT))
    assert logged.policy == "count" and logged.target == "churn"
    assert "customer_id" not in logged.names and logged.rule("tenure_months").min == 0
    assert mlflow.get_run(result.run_id).data.tags["mloop.contract"] == "inferred"


def test_contract_key_training_only_columns_and_target_mismatch(project):
    folder, frame, data, contract = project
    frame["note"] = ["a", "b", "c"] * 200
    write_table(frame, data)
    (folder / "features.yaml").unlink()
    extended = FeatureContract(
        features=(*contract.features, FeatureRule("note", "category", used_in="training")),
        target="churn",
    )
    extended.dump(folder / "spec.yaml")
    (folder / "params.yaml").write_text(SMALL + "contract: spec.yaml\n")
    result = train(data, load_config(folder / "params.yaml"))
    params = mlflow.get_run(result.run_id).data.params
    assert "note" not in params["features.categorical"].split(",")
    FeatureContract(features=contract.features, target="churned").dump(folder / "spec.yaml")
    with pytest.raises(ConfigError, match="names target 'churned'"):
        train(data, load_config(folder / "params.yaml"))
    (folder / "params.yaml").write_text(SMALL + "contract: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml' does not exist"):
        train(data, load_config(folder / "params.yaml"))
