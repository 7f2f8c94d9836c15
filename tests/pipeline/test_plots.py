"""Every training run logs its evaluation plots (PNG and JSON) under `plots/`; `task:` in the
config picks regression, whose plots, metrics and gates are the regressor's."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mloop.data import generate_churn, write_table
from mloop.errors import ValidationError
from mloop.pipeline import plots
from mloop.pipeline.train import train

PNG = b"\x89PNG\r\n\x1a\n"


def _artifacts(run_id: str, tmp_path: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/plots", dst_path=tmp_path))


def test_classification_run_logs_plots_that_match_its_metrics(
    module_home, churn_csv, make_config, tmp_path
):
    result = train(churn_csv, make_config(evaluate={"cv_folds": 0}), name="plotted")
    folder = _artifacts(result.run_id, tmp_path)
    names = {*plots.CLASSIFICATION_PLOTS, "feature_importance"}
    assert {p.name for p in folder.iterdir()} == {
        f"{n}.{x}" for n in names for x in ("png", "json")
    }
    assert all((folder / f"{n}.png").read_bytes().startswith(PNG) for n in names)
    roc = json.loads((folder / "roc.json").read_text())["curves"][0]
    assert roc["label"] == 1 and roc["auc"] == pytest.approx(result.metrics["roc_auc"])
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    matrix = np.array(json.loads((folder / "confusion_matrix.json").read_text())["matrix"])
    test_rows = int(mlflow.get_run(result.run_id).data.params["split.test_rows"])
    assert matrix.shape == (2, 2) and matrix.sum() == test_rows
    correct = np.trace(matrix) / matrix.sum()
    assert correct == pytest.approx(result.metrics["accuracy"])
    importance = json.loads((folder / "feature_importance.json").read_text())
    assert importance["method"] == "model" and len(importance["features"]) <= plots.TOP_FEATURES
    assert importance["importance"] == sorted(importance["importance"], reverse=True)
    calibration = json.loads((folder / "calibration.json").read_text())["curves"][0]
    assert all(0.0 <= v <= 1.0 for v in calibration["observed"] + calibration["predicted"])
    tags = mlflow.get_run(result.run_id).data.tags
    assert tags["mloop.plots"].split(",") == [*plots.CLASSIFICATION_PLOTS, "feature_importance"]


def test_model_without_importances_gets_permutation_importance(
    module_home, churn_csv, make_config, tmp_path
):
    config = make_config(
        train={"model": "logistic_regression", "params": {"max_iter": 2000}},
        evaluate={"cv_folds": 0},
    )
    result = train(churn_csv, config, name="linear")
    folder = _artifacts(result.run_id, tmp_path)
    importance = json.loads((folder / "feature_importance.json").read_text())
    assert importance["method"] == "permutation"
    assert len(importance["std"]) == len(importance["features"])
    assert "customer_id" not in importance["features"]  # raw inputs only, never ids
    assert "monthly_charges" in importance["features"]


def test_multiclass_curves_are_one_vs_rest(module_home, tmp_path, make_config):
    data = write_table(generate_churn(600, seed=3).drop(columns=["churn"]), tmp_path / "m.csv")
    config = make_config(data={"target": "contract_type"}, register={"criteria": {"roc_auc": 0.5}})
    result = train(data, config, name="multi-plots")
    folder = _artifacts(result.run_id, tmp_path / "out")
    labels = json.loads((folder / "confusion_matrix.json").read_text())["labels"]
    curves = json.loads((folder / "roc.json").read_text())["curves"]
    assert len(labels) == 3 and [c["label"] for c in curves] == labels


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory) -> Path:
    frame = generate_churn(800, seed=5).drop(columns=["churn"]).dropna(subset=["total_charges"])
    return write_table(frame, tmp_path_factory.mktemp("reg") / "spend.csv")


def test_task_regression_trains_gates_and_plots(module_home, regression_csv, make_config, tmp_path):
    config = make_config(task="regression", data={"target": "total_charges"})
    assert config.register.criteria == {"r2": 0.5}  # regression's default gate
    result = train(regression_csv, config, name="spend")
    assert result.task == "regression" and result.registered
    assert {"rmse", "mae", "r2", "cv_mean", "cv_std"} <= set(result.metrics)
    assert [c.metric for c in result.criteria] == ["r2"]
    folder = _artifacts(result.run_id, tmp_path)
    residuals = json.loads((folder / "residuals.json").read_text())
    versus = json.loads((folder / "predicted_vs_actual.json").read_text())
    assert len(residuals["predicted"]) == len(residuals["residual"]) <= plots.MAX_POINTS
    assert np.allclose(
        np.array(versus["actual"]) - np.array(versus["predicted"]), residuals["residual"]
    )
    assert (folder / "residuals.png").read_bytes().startswith(PNG)
    assert not (folder / "roc.json").exists()


def test_regression_gates_on_error_metrics(module_home, regression_csv, make_config):
    strict = make_config(
        task="regression",
        data={"target": "total_charges"},
        train={"model": "ridge", "params": {}},
        register={"criteria": {"r2": 0.5, "mae": 1.0}},
    )
    result = train(regression_csv, strict, name="spend-strict")
    assert not result.registered
    assert [c.describe().split()[0] for c in result.failed_criteria] == ["mae"]
    assert "short by" in result.failed_criteria[0].describe()


def test_declared_task_is_checked_against_the_target(module_home, churn_csv, make_config):
    with pytest.raises(ValidationError, match="task: regression needs a numeric target"):
        train(churn_csv, make_config(task="regression", data={"target": "contract_type"}))
    with pytest.raises(ValidationError, match="'monthly_charges' is continuous") as info:
        train(churn_csv, make_config(task="classification", data={"target": "monthly_charges"}))
    assert "use task: regression" in (info.value.hint or "")
