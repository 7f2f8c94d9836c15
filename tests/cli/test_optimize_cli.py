"""`mloop optimize`: the default churn model compiles to ONNX, keeps parity, and serves."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data import generate_churn, write_table
from mloop.pipeline.config import load_config
from mloop.pipeline.train import train
from mloop.serving.app import create_app
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.env import home_env

runner = CliRunner()


@pytest.fixture(scope="module")
def churn_home(tmp_path_factory):
    """The default `mloop train` model (DateParts, IQRClipper, CategoryCleaner inside)."""
    home = tmp_path_factory.mktemp("optimize-home")
    with home_env(home) as settings:
        frame = generate_churn(1500, seed=3)
        data = write_table(frame.head(1000), home / "train.csv")
        holdout = write_table(frame.tail(500), home / "holdout.csv")
        config = load_config(None)
        config.train.params["n_estimators"] = 30
        result = train(data, config, name="churn", settings=settings)
        assert result.registered, result.criteria
        yield settings, holdout


def test_help_has_an_example():
    result = runner.invoke(app, ["optimize", "--help"])
    assert result.exit_code == 0 and "Example: mloop optimize churn/1" in result.output


def test_the_default_churn_model_compiles_and_serves_with_onnxruntime(churn_home):
    settings, holdout = churn_home
    result = runner.invoke(app, ["optimize", "churn/1", "--data", str(holdout), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["version"] == "2" and report["source_version"] == "1"
    assert report["rows_checked"] == 500 and report["labels_equal"]
    assert report["max_abs_diff"] <= 1e-5
    tags = mlflow.MlflowClient().get_model_version("churn", "2").tags
    assert tags["mloop.optimized_from"] == "churn/1"

    rows = (
        generate_churn(40, seed=11)
        .drop(columns=["churn", "customer_id"])
        .astype(object)
        .pipe(lambda f: f.where(f.notna(), None))
        .to_dict("records")
    )
    answers = {}
    for ref in ("churn/1", "churn/2"):
        with in_process(create_app(ref, settings, log_predictions=False)) as http:
            info = http.get("/model/info").json()
            batch = http.post("/predict/batch", json={"instances": rows})
            assert batch.status_code == 200, batch.text
            answers[ref] = batch.json()["predictions"]
            assert info["flavor"] == ("onnx" if ref == "churn/2" else "sklearn")
    assert [p["prediction"] for p in answers["churn/1"]] == [
        p["prediction"] for p in answers["churn/2"]
    ]
    np.testing.assert_allclose(
        [p["probability"] for p in answers["churn/2"]],
        [p["probability"] for p in answers["churn/1"]],
        atol=1e-5,
    )


def test_a_step_without_converter_is_refused_by_name(churn_home, tmp_path):
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import SplineTransformer

    frame = generate_churn(200, seed=1)[["age", "tenure_months"]].fillna(0)
    pipeline = Pipeline(
        [
            ("splines", SplineTransformer(n_knots=3)),
            ("model", RandomForestClassifier(n_estimators=3, random_state=0)),
        ]
    ).fit(frame, np.arange(200) % 2)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame),
            serialization_format="cloudpickle",
            registered_model_name="custom",
            pip_requirements=modelkit.PIP_REQUIREMENTS,  # no inference subprocess
        )
    result = runner.invoke(app, ["optimize", "custom/1"])
    assert result.exit_code == 2
    assert "step 'splines' (SplineTransformer) has no ONNX converter" in result.output
    assert "hint:" in result.output
    assert mlflow.MlflowClient().search_model_versions("name='custom'")[0].version in (1, "1")
    assert len(mlflow.MlflowClient().search_model_versions("name='custom'")) == 1


def test_an_unknown_model_is_not_found(churn_home):
    result = runner.invoke(app, ["optimize", "nope/3"])
    assert result.exit_code == 3
    assert "error:" in result.output
