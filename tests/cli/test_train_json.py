"""`mloop train --json` / `--metrics-file`: the report CI steps read (run id, version, metrics,
each gate's verdict) on stdout alone, and an exit code that says whether the gates passed."""

from __future__ import annotations

import json

import mlflow
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app

runner = CliRunner()

SMALL_CONFIG = """\
train:
  params: {n_estimators: 15}
evaluate:
  cv_folds: 2
register:
  criteria: {roc_auc: %s}
"""


@pytest.fixture
def churn_file(mloop_home, tmp_path):
    path = tmp_path / "churn.csv"
    result = runner.invoke(app, ["data", "churn", "--rows", "1200", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def train(churn_file, tmp_path, threshold: float, *extra: str):
    config = tmp_path / f"params-{threshold}.yaml"
    config.write_text(SMALL_CONFIG % threshold)
    args = ["train", "--data", str(churn_file), "--config", str(config), "--name", "ci-churn"]
    return runner.invoke(app, [*args, *extra])


def test_json_reports_a_registered_version_and_exits_0(churn_file, tmp_path):
    out_file = tmp_path / "train.json"
    result = train(churn_file, tmp_path, 0.5, "--json", "--metrics-file", str(out_file))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert report == json.loads(out_file.read_text())
    assert report["registered"] is True and report["passed"] is True
    assert report["version"] == "1" and report["model_name"] == "ci-churn"
    assert report["model_uri"] == "models:/ci-churn/1"
    run = mlflow.get_run(report["run_id"])
    assert report["metrics"]["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"])
    [gate] = report["gates"]
    assert gate["metric"] == "roc_auc" and gate["threshold"] == 0.5 and gate["passed"] is True
    assert gate["actual"] == pytest.approx(report["metrics"]["roc_auc"])


def test_failed_gates_give_the_report_and_exit_5(churn_file, tmp_path):
    result = train(churn_file, tmp_path, 0.999, "--json")
    assert result.exit_code == 5, result.output
    report = json.loads(result.stdout)
    assert report["registered"] is False and report["passed"] is False
    assert report["version"] is None
    assert [(g["metric"], g["passed"]) for g in report["gates"]] == [("roc_auc", False)]
    assert report["gates"][0]["margin"] < 0
    assert "not registered: roc_auc" in result.stderr  # the one-line error, on stderr


def test_metrics_file_alone_keeps_the_tables(churn_file, tmp_path):
    out_file = tmp_path / "report.json"
    result = train(churn_file, tmp_path, 0.999, "--metrics-file", str(out_file))
    assert result.exit_code == 5
    assert "FAIL" in result.stdout  # the human tables still print
    assert json.loads(out_file.read_text())["passed"] is False


def test_a_metrics_file_in_a_missing_folder_is_refused_before_training(churn_file, tmp_path):
    missing = tmp_path / "nope" / "train.json"
    result = train(churn_file, tmp_path, 0.5, "--metrics-file", str(missing))
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing was trained


def test_help_has_the_json_example():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output and "--metrics-file" in result.output
