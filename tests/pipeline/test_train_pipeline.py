"""The training pipeline on real MLflow: logging, lineage, gate, registry, loading back."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mloop.data import generate_churn, read_table, write_table
from mloop.errors import ConfigError, NotFoundError, ValidationError
from mloop.pipeline import dataset
from mloop.pipeline.train import STEPS, TrainResult, train

RAW_ROWS = [
    {
        "age": None,
        "tenure_months": 3.0,
        "monthly_charges": 95.5,
        "total_charges": None,
        "num_support_calls": 4.0,
        "data_usage_gb": 20.0,
        "contract_type": "month-to-month",
        "payment_method": "electronic_check",
        "internet_service": None,
        "region": "north",
        "signup_date": "2024-10-01",
    },
    {
        "age": 61.0,
        "tenure_months": 70.0,
        "monthly_charges": 30.0,
        "total_charges": 2100.0,
        "num_support_calls": 0.0,
        "data_usage_gb": 2.5,
        "contract_type": "two-year",
        "payment_method": "a-brand-new-method",
        "internet_service": "dsl",
        "region": "south",
        "signup_date": None,
    },
]


@pytest.fixture(scope="module")
def trained(module_home, churn_csv, make_config) -> tuple[TrainResult, list[str]]:
    steps: list[str] = []
    result = train(churn_csv, make_config(), settings=module_home, on_step=steps.append)
    return result, steps


def test_registers_when_criteria_pass(trained):
    result, steps = trained
    assert list(steps) == list(STEPS)
    assert result.registered and result.version == "1"
    assert result.model_uri == "models:/churn/1"
    assert result.ref == "churn/1"
    assert result.failed_criteria == []
    assert {c.metric for c in result.criteria} == {"accuracy", "roc_auc"}
    assert all(c.margin >= 0 for c in result.criteria)
    version = mlflow.MlflowClient().get_model_version("churn", "1")
    assert version.tags["mloop.stage"] == "None"
    assert version.tags["mloop.run_id"] == result.run_id


def test_run_has_metrics_params_and_lineage_tags(trained, churn_csv):
    result, _ = trained
    run = mlflow.get_run(result.run_id)
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "cv_mean", "cv_std"):
        assert run.data.metrics[metric] == pytest.approx(result.metrics[metric])
    params = run.data.params
    assert params["n_estimators"] == "20" and params["max_depth"] == "10"
    assert params["model_type"] == "random_forest"
    assert params["split.test_split"] == "0.2"
    assert "contract_type" in params["features.categorical"]
    assert params["features.date"] == "signup_date"
    tags = run.data.tags
    assert tags["mloop.data_rows"] == "1500"
    assert tags["mloop.data_path"] == str(Path(churn_csv).resolve())
    assert len(tags["mloop.data_sha256"]) == 64
    versions = json.loads(tags["mloop.package_versions"])
    assert set(versions) == {"mlflow", "scikit-learn", "pandas", "numpy", "mloop"}
    assert tags["mloop.model_type"] == "random_forest"
    assert tags["mloop.task"] == "binary"
    spec = json.loads(tags["mloop.feature_spec"])
    assert spec["target"] == "churn" and spec["drop"] == ["customer_id"]
    assert "n_estimators: 20" in tags["mloop.config"]
    assert "mloop.git_commit" not in tags or len(tags["mloop.git_commit"]) >= 7


def test_artifacts_config_importance_and_signature(trained):
    result, _ = trained
    run_id = result.run_id
    config_text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/params.yaml")
    assert "random_forest" in config_text
    importance = mlflow.artifacts.load_dict(f"runs:/{run_id}/feature_importance.json")
    assert sum(importance.values()) == pytest.approx(1.0)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    info = mlflow.models.get_model_info(result.model_uri)
    inputs = {c["name"]: c for c in info.signature.inputs.to_dict()}
    assert "churn" not in inputs and "customer_id" not in inputs
    assert inputs["tenure_months"]["type"] == "double"
    assert inputs["signup_date"]["type"] == "string"
    assert inputs["age"]["required"] is False  # has missing values in training
    assert inputs["internet_service"]["required"] is False


def test_roc_auc_is_from_probabilities_of_the_held_out_split(trained, churn_csv, make_config):
    result, _ = trained
    config = make_config()
    ds = dataset.prepare(read_table(churn_csv), config, source=str(churn_csv))
    _, X_test, _, y_test = dataset.split(ds, 0.2, 42)
    model = mlflow.sklearn.load_model(result.model_uri)
    proba = model.predict_proba(X_test)[:, 1]
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(y_test, proba))
    # Hard labels would give a different (worse) number: make sure that is not what we logged.
    assert result.metrics["roc_auc"] != pytest.approx(roc_auc_score(y_test, proba >= 0.5))
    assert result.metrics["roc_auc"] > 0.75


def test_logged_model_predicts_raw_rows_with_none(trained):
    result, _ = trained
    rows = pd.DataFrame(RAW_ROWS)
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    predictions = np.asarray(pyfunc.predict(rows))
    assert predictions.shape == (2,) and set(predictions) <= {0, 1}
    sk = mlflow.sklearn.load_model(result.model_uri)
    proba = sk.predict_proba(rows)
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0)
    # The churn-prone customer scores higher than the loyal one.
    assert proba[0, 1] > proba[1, 1]


def test_not_registered_when_criteria_fail(module_home, churn_csv, make_config):
    config = make_config(register={"criteria": {"roc_auc": 0.999, "accuracy": 0.5}})
    result = train(churn_csv, config, name="churn-strict", settings=module_home)
    assert not result.registered and result.version is None
    assert [c.metric for c in result.failed_criteria] == ["roc_auc"]
    failed = result.failed_criteria[0]
    assert failed.margin < 0 and failed.actual == pytest.approx(result.metrics["roc_auc"])
    assert "short by" in failed.describe()
    assert result.model_uri.startswith("models:/")
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient().get_registered_model("churn-strict")
    assert mlflow.get_run(result.run_id).data.tags["mloop.criteria_passed"] == "false"
    # Still loadable from its run: the unregistered model was logged.
    assert mlflow.pyfunc.load_model(result.model_uri) is not None


def test_name_overrides_register_name_and_versions_increase(module_home, churn_csv, make_config):
    first = train(churn_csv, make_config(evaluate={"cv_folds": 0}), name="other")
    second = train(churn_csv, make_config(evaluate={"cv_folds": 0}), name="other")
    assert (first.version, second.version) == ("1", "2")
    assert "cv_mean" not in first.metrics


def test_other_models_train(module_home, churn_csv, make_config):
    for model, params in (
        ("logistic_regression", {"max_iter": 2000}),
        ("gradient_boosting", {"n_estimators": 20}),
    ):
        config = make_config(train={"model": model, "params": params}, evaluate={"cv_folds": 0})
        result = train(churn_csv, config, name=f"m-{model}")
        assert result.registered, result.criteria
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["mloop.model_type"] == "gradient_boosting"


def test_multiclass_and_regression_targets(module_home, tmp_path, make_config):
    df = generate_churn(600, seed=3)
    multi = tmp_path / "multi.csv"
    write_table(df.drop(columns=["churn"]), multi)
    config = make_config(data={"target": "contract_type"}, register={"criteria": {"roc_auc": 0.5}})
    result = train(multi, config, name="multi")
    assert result.task == "multiclass" and result.registered
    assert 0.5 <= result.metrics["roc_auc"] <= 1.0

    config = make_config(
        data={"target": "total_charges"}, register={"criteria": {"r2": 0.5, "rmse": 1e9}}
    )
    reg = tmp_path / "reg.parquet"
    write_table(df.drop(columns=["churn"]).dropna(subset=["total_charges"]), reg)
    result = train(reg, config, name="reg")
    assert result.task == "regression"
    assert {"rmse", "mae", "r2", "cv_mean"} <= set(result.metrics)
    assert result.registered


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10}), "target column 'churn'"),
        (pd.DataFrame({"a": np.arange(30.0), "churn": [1] * 30}), "single class"),
        (pd.DataFrame({"a": np.arange(4.0), "churn": [0, 1, 0, 1]}), "too few rows to split"),
        (
            pd.DataFrame({"a": np.arange(30.0), "churn": [0, 1, None] * 10}),
            "10 missing value(s) (data rows 3, 6, 9, 12, 15, ...)",
        ),
        (pd.DataFrame({"churn": [0, 1] * 10}), "no feature columns"),
    ],
)
def test_data_problems_are_validation_errors(module_home, tmp_path, frame, message, make_config):
    path = write_table(frame, tmp_path / "bad.csv")
    with pytest.raises(ValidationError) as info:
        train(path, make_config())
    assert message in info.value.message


def test_empty_and_missing_files(module_home, tmp_path, make_config):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="is empty"):
        train(empty, make_config())
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,churn\n")
    with pytest.raises(ValidationError, match="has no rows"):
        train(header_only, make_config())
    with pytest.raises(NotFoundError, match="does not exist"):
        train(tmp_path / "missing.csv", make_config())


def test_config_problems_found_before_training(module_home, churn_csv, make_config):
    steps: list[str] = []
    config = make_config(features={"numeric": ["age", "no_such_column"]})
    with pytest.raises(ValidationError, match="features.numeric .*no_such_column"):
        train(churn_csv, config, on_step=steps.append)
    with pytest.raises(ConfigError, match="register.criteria.rmse"):
        train(churn_csv, make_config(register={"criteria": {"rmse": 1.0}}), on_step=steps.append)
    with pytest.raises(ConfigError, match="does not support regression"):
        train(
            churn_csv,
            make_config(
                data={"target": "monthly_charges"},
                train={"model": "logistic_regression", "params": {}},
            ),
        )
    assert set(steps) == {"load", "validate"}  # nothing fitted
