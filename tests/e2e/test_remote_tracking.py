"""The whole loop against a team's shared tracking server: a real `mlflow server` process on
PostgreSQL with its artifacts on S3 (moto's standalone server), in its two artifact modes.

train -> registered -> promote -> serve (the model loads from S3 through the server) ->
predict -> batch score a file -> drift report -> drift alert retrains a candidate. The
artifacts are in the bucket and not under MLOOP_HOME, and a teammate with an empty
MLOOP_HOME of their own serves the same version.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mloop.governance.governed import governed_registry
from mloop.jobs.batch import batch_predict
from mloop.registry.tracking import ensure_experiment
from mloop.serving.app import create_app
from mloop.settings import Settings
from tests.support import loopkit
from tests.support.apps import in_process
from tests.support.remote_mlflow import MlflowServer, MotoS3, local_files, remote_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture(scope="module")
def proxy_server(s3: MotoS3) -> Iterator[MlflowServer]:
    """Artifacts through the server (`--artifacts-destination s3://...`)."""
    with MlflowServer(s3, mode="proxy") as server:
        yield server


@pytest.fixture(scope="module")
def direct_server(s3: MotoS3) -> Iterator[MlflowServer]:
    """Clients write to S3 themselves (`--default-artifact-root s3://... --no-serve-artifacts`)."""
    with MlflowServer(s3, mode="direct") as server:
        yield server


def unique(stem: str) -> str:
    """A model or experiment name of this test alone (the servers are shared by the module)."""
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def train(settings: Settings, folder: Path, name: str, rows: int = 800):
    """A small churn model trained and registered by mloop.pipeline, promoted to Production."""
    from mloop.data import generate_churn
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train as run_training

    data = folder / "churn.csv"
    generate_churn(rows, seed=1).to_csv(data, index=False)
    config = config_from_dict(
        {
            "train": {"model": "random_forest", "params": {"n_estimators": 20, "max_depth": 6}},
            "evaluate": {"cv_folds": 0},
            "register": {"name": name, "criteria": {"accuracy": 0.5}},
        }
    )
    result = run_training(data, config, settings=settings)
    assert result.registered, result.failed_criteria
    governed_registry(settings).promote(name, result.version, "Production")
    return result, data


def experiment_location(settings: Settings) -> str:
    import mlflow

    experiment_id = ensure_experiment(settings.experiment, settings)  # configures mlflow first
    return mlflow.MlflowClient().get_experiment(experiment_id).artifact_location


def version_keys(s3: MotoS3, server: MlflowServer, name: str, version: str) -> list[str]:
    """Bucket keys of the version's model files (its source is under the server's prefix)."""
    import mlflow

    source = mlflow.MlflowClient().get_model_version(name, version).source
    model_id = source.rstrip("/").rsplit("/", 1)[-1]  # models:/m-... (a logged model)
    return [key for key in s3.objects(server.prefix + "/") if model_id in key]


def predict(settings: Settings, reference: str, rows: list[dict]) -> list:
    with in_process(create_app(reference, settings)) as http:
        answer = http.post("/predict/batch", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        return [p["prediction"] for p in answer.json()["predictions"]]


def test_whole_loop_through_the_artifact_proxy(s3, proxy_server, tmp_path, monkeypatch):
    name = unique("churn")
    home = tmp_path / "alice"
    settings = remote_settings(home, proxy_server, monkeypatch, MLOOP_EXPERIMENT=unique("exp"))
    assert settings.artifact_root == ""  # remote server, no root set: the server decides
    result, data = train(settings, tmp_path, name)
    assert experiment_location(settings).startswith("mlflow-artifacts:")

    keys = version_keys(s3, proxy_server, name, result.version)
    assert any(key.endswith("/MLmodel") for key in keys), s3.objects()
    stored = s3.objects()
    assert any(key.endswith("monitoring/reference_profile.json") for key in stored), stored
    assert not [f for f in local_files(home) if "MLmodel" in f or f.endswith(".pkl")]

    settings = settings.model_copy(
        update={"retrain_data": str(data), "drift_min_rows": 50, "drift_interval_seconds": 0.2}
    )
    rows = loopkit.churn_rows(40, seed=11)
    with in_process(create_app(f"{name}@production", settings)) as http:
        info = http.get("/model/info").json()
        assert info["version"] == result.version, info
        one = http.post("/predict", json={"features": rows[0]})
        assert one.status_code == 200, one.text
        assert one.json()["prediction"] in (0, 1)
        served = loopkit.predict_ids(http, rows)
        assert len(served) == 40
        shifted = loopkit.churn_rows(300, seed=12, drift=True)
        loopkit.predict_ids(http, shifted)
        report = http.get("/monitor/drift").json()
        assert report["rows"] == 341 and report["dataset_drift"] is True, report

        alert = loopkit.alert_payload(
            "FeatureDriftDetected",
            fingerprint=uuid.uuid4().hex[:8],
            labels={"model_version": result.version, "action": "retrain", "job": "mloop"},
        )
        answer = http.post("/alerts/webhook", json=alert)
        assert answer.status_code == 200, answer.text
        assert http.app.state.mloop_monitoring.retrain.wait_idle(300)
        jobs = http.get("/retrain/jobs").json()["jobs"]
    assert jobs[0]["status"] == "succeeded", jobs
    assert version_keys(s3, proxy_server, name, jobs[0]["new_version"])  # the candidate: in S3

    frame = pd.DataFrame(rows)
    frame.insert(0, "customer_id", range(len(frame)))
    frame.to_csv(tmp_path / "score.csv", index=False)
    summary = batch_predict(
        f"{name}@production", tmp_path / "score.csv", tmp_path / "scored.csv", settings=settings
    )
    assert (summary.rows, summary.scored) == (40, 40)
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert set(scored["model_version"].astype(str)) == {result.version}

    # A teammate: the same server, an empty home of their own; no S3 credentials needed.
    bob = remote_settings(tmp_path / "bob", proxy_server, monkeypatch)
    assert predict(bob, f"{name}@production", rows) == scored["prediction"].tolist()
    assert not [f for f in local_files(tmp_path / "bob") if "MLmodel" in f]


def test_direct_s3_artifacts_are_shared(s3, direct_server, tmp_path, monkeypatch):
    name = unique("churn")
    env = {k: v for k, v in s3.client_env.items() if k != "MLFLOW_S3_ENDPOINT_URL"}
    settings = remote_settings(
        tmp_path / "alice",
        direct_server,
        monkeypatch,
        MLOOP_EXPERIMENT=unique("exp"),
        MLOOP_S3_ENDPOINT_URL=s3.url,  # mloop's setting becomes MLflow's MLFLOW_S3_ENDPOINT_URL
        **env,
    )
    result, _ = train(settings, tmp_path, name)
    assert experiment_location(settings).startswith(f"s3://{s3.bucket}/{direct_server.prefix}/")
    keys = version_keys(s3, direct_server, name, result.version)
    assert any(key.endswith("/MLmodel") for key in keys), s3.objects()
    assert not [f for f in local_files(tmp_path / "alice") if "MLmodel" in f]

    rows = loopkit.churn_rows(20, seed=3)
    alice = predict(settings, f"{name}@production", rows)
    bob = remote_settings(tmp_path / "bob", direct_server, monkeypatch, **s3.client_env)
    assert predict(bob, f"{name}@production", rows) == alice


def test_an_explicit_artifact_root_wins_over_the_server(s3, proxy_server, tmp_path, monkeypatch):
    experiment = unique("exp")
    root = f"s3://{s3.bucket}/explicit"
    settings = remote_settings(
        tmp_path / "home",
        proxy_server,
        monkeypatch,
        MLOOP_EXPERIMENT=experiment,
        MLOOP_ARTIFACT_ROOT=root,
        **s3.client_env,
    )
    assert experiment_location(settings) == f"{root}/{experiment}"


def test_settings_leave_the_artifact_root_to_a_remote_server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOOP_ARTIFACT_ROOT", raising=False)
    remote = Settings(home=tmp_path, tracking_uri="https://mlflow.example.com")
    assert remote.remote_tracking and remote.artifact_root == ""
    assert "tracking server" in remote.sources()["artifact_root"]
    remote.ensure_home()
    assert not (tmp_path / "artifacts").exists()
    local = Settings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'x.db'}")
    assert not local.remote_tracking and local.artifact_root == str(tmp_path / "artifacts")
