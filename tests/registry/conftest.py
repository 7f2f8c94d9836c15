"""Registered versions made without mloop's pipeline: small scikit-learn models on iris.

Logging a model costs a moment, so three runs are logged once per module; each test then
registers its own model from them (`make_model`), which is a real MLflow registration and fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.settings import Settings
from tests.support.env import home_env


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    accuracy: float


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings rooted in a fresh MLOOP_HOME shared by one test module."""
    with home_env(tmp_path_factory.mktemp("registry") / "mloop-home") as settings:
        configure_mlflow(settings)
        yield settings


@pytest.fixture(scope="module")
def logged_runs(registry_home: Settings) -> list[LoggedRun]:
    """Three runs, each with a LogisticRegression, metrics, params and mloop.* lineage tags.

    They are registered as versions 1-3 of model `iris` as they are logged.
    """
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True)
    mlflow.set_experiment(experiment_id=ensure_experiment("registry-tests", registry_home))
    runs = []
    for index, c in enumerate((0.01, 0.1, 1.0)):
        model = LogisticRegression(C=c, max_iter=200).fit(features, target)
        accuracy = float(model.score(features, target))
        with mlflow.start_run() as run:
            mlflow.log_params({"C": c, "max_iter": 200})
            mlflow.log_metrics({"accuracy": accuracy, "index": index})
            mlflow.set_tags(
                {
                    "mloop.git_commit": f"commit{index}",
                    "mloop.data_sha256": "ab" * 32,
                    "mloop.data_path": "data/iris.csv",
                    "other.tag": "not lineage",
                }
            )
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name="iris",
                input_example=features[:2],
                # Skips MLflow's requirement inference, a subprocess that costs seconds.
                pip_requirements=["scikit-learn"],
            )
        runs.append(LoggedRun(run.info.run_id, info.model_uri, accuracy))
    return runs


@pytest.fixture
def make_model(registry_home: Settings, logged_runs: list[LoggedRun]) -> Callable[[int], str]:
    """Register a fresh model with `count` versions (version i from logged run i-1, cycling).

    Also points MLflow's global URIs back at this module's store (a function-scoped
    `mloop_home` test in between moves them).
    """
    import mlflow

    configure_mlflow(registry_home)
    client = mlflow.MlflowClient()

    def make(count: int = 3) -> str:
        name = f"m-{uuid.uuid4().hex[:8]}"
        client.create_registered_model(name, description=f"test model {name}")
        for index in range(count):
            run = logged_runs[index % len(logged_runs)]
            client.create_model_version(name, source=run.model_uri, run_id=run.run_id)
        return name

    return make
