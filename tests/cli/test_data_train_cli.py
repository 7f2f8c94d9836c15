"""`mloop data churn` and `mloop train` through Typer's runner, on real MLflow."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app

runner = CliRunner()


def squash(text: str) -> str:
    """Output without whitespace, so Rich's line wrapping cannot split what we look for."""
    return "".join(text.split())


SMALL_CONFIG = """\
train:
  params: {n_estimators: 15}
evaluate:
  cv_folds: 2
"""


@pytest.fixture
def churn_file(mloop_home, tmp_path):
    path = tmp_path / "churn.csv"
    result = runner.invoke(app, ["data", "churn", "--rows", "1200", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_data_churn_writes_csv_and_parquet(mloop_home, tmp_path, name):
    path = tmp_path / "sub" / name
    result = runner.invoke(
        app, ["data", "churn", "--rows", "300", "--out", str(path), "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "300 rows x 13 columns" in result.output
    assert "churn rate" in result.output
    df = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
    assert len(df) == 300 and "churn" in df.columns


def test_data_churn_drift_and_bad_extension(mloop_home, tmp_path):
    drift = runner.invoke(
        app, ["data", "churn", "--rows", "200", "--out", str(tmp_path / "d.pq"), "--drift"]
    )
    assert drift.exit_code == 0 and "drifted" in drift.output
    bad = runner.invoke(app, ["data", "churn", "--out", str(tmp_path / "d.xlsx")])
    assert bad.exit_code == 2
    assert "unsupported table extension '.xlsx'" in bad.output
    assert "Traceback" not in bad.output


def test_help_has_examples():
    for args in (["data", "churn", "--help"], ["train", "--help"], ["data", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Example:" in result.output


def test_train_registers(churn_file, tmp_path):
    config = tmp_path / "params.yaml"
    config.write_text(SMALL_CONFIG)
    result = runner.invoke(
        app, ["train", "--data", str(churn_file), "--config", str(config), "--name", "cli-churn"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "roc_auc" in out and "accuracy" in out and "pass" in out
    assert "registered: cli-churn/1" in out
    assert mlflow.MlflowClient().get_model_version("cli-churn", "1").tags["mloop.stage"] == "None"


def test_train_change_sets_the_semantic_version(churn_file, tmp_path):
    config = tmp_path / "params.yaml"
    config.write_text(SMALL_CONFIG)
    args = ["train", "--data", str(churn_file), "--config", str(config), "--name", "semver"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--change", "major"])
    assert result.exit_code == 0, result.output
    tags = mlflow.MlflowClient().get_model_version("semver", "2").tags
    assert tags["mloop.change_type"] == "major"
    first = mlflow.MlflowClient().get_model_version("semver", "1").tags["mloop.semver"]
    assert int(tags["mloop.semver"].split(".")[0]) == int(first.split(".")[0]) + 1

    bad = runner.invoke(app, [*args, "--change", "huge"])
    assert bad.exit_code == 2 and "unknown change type 'huge'" in bad.output


def test_train_fails_criteria_with_exit_5(churn_file, tmp_path):
    config = tmp_path / "strict.yaml"
    config.write_text(SMALL_CONFIG + "register:\n  criteria: {roc_auc: 0.999}\n")
    result = runner.invoke(app, ["train", "--data", str(churn_file), "--config", str(config)])
    assert result.exit_code == 5, result.output
    assert "FAIL" in result.output
    assert "not registered: roc_auc" in result.output
    assert squash("< 0.999 (short by") in squash(result.output)
    assert "Traceback" not in result.output


def test_train_bad_inputs(mloop_home, churn_file, tmp_path):
    missing = runner.invoke(app, ["train", "--data", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 3
    assert squash(f"error: data file '{tmp_path / 'nope.csv'}' does not exist") in squash(
        missing.output
    )
    assert "Traceback" not in missing.output

    bad_ext = runner.invoke(app, ["train", "--data", str(tmp_path / "data.txt")])
    assert bad_ext.exit_code == 2 and "unsupported table extension" in bad_ext.output

    config = tmp_path / "bad.yaml"
    config.write_text("train: {model: xgboost}\n")
    bad_cfg = runner.invoke(app, ["train", "--data", str(churn_file), "--config", str(config)])
    assert bad_cfg.exit_code == 2
    assert squash(f"{config}: train: unknown model 'xgboost'") in squash(bad_cfg.output)

    no_target = tmp_path / "no_target.csv"
    pd.DataFrame({"a": range(20)}).to_csv(no_target, index=False)
    bad_data = runner.invoke(app, ["train", "--data", str(no_target)])
    assert bad_data.exit_code == 2
    assert "target column 'churn'" in bad_data.output and "Traceback" not in bad_data.output
