"""The training runs behind registered versions: run ids, metrics, params, tags, artifacts.

What monitoring, retraining, the CLI and model cards read from (or attach to) a version's run,
through a client bound to the given settings (never MLflow's process-wide URI). Failures are
mloop errors (see `failures.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mloop.errors import NotFoundError
from mloop.registry.failures import mlflow_failures
from mloop.registry.tracking import client_for
from mloop.settings import Settings


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run's id and its logged metrics, params and tags."""

    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def version_run_id(settings: Settings, name: str, version: str) -> str | None:
    """The id of the run that logged version `version` of `name` (None when it has none).

    NotFoundError when the version is not registered.
    """
    with mlflow_failures(settings.tracking_uri, f"reading version {version} of '{name}'"):
        found = client_for(settings).get_model_version(name, str(version))
    return found.run_id or None


def run_record(settings: Settings, run_id: str) -> RunRecord | None:
    """The run `run_id`, or None when it does not exist (deleted)."""
    try:
        with mlflow_failures(settings.tracking_uri, f"reading run {run_id}"):
            run = client_for(settings).get_run(run_id)
    except NotFoundError:
        return None
    return RunRecord(
        run_id=run_id,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
    )


def training_run(settings: Settings, name: str, version: str) -> RunRecord | None:
    """The run behind a registered version, or None when it has none or the run was deleted.

    NotFoundError when the version is not registered.
    """
    run_id = version_run_id(settings, name, version)
    return run_record(settings, run_id) if run_id else None


def log_run_artifact(settings: Settings, run_id: str, path: Path, artifact_path: str) -> None:
    """Attach the local file `path` to run `run_id` under `artifact_path`."""
    with mlflow_failures(settings.tracking_uri, f"logging {path.name} to run {run_id}"):
        client_for(settings).log_artifact(run_id, str(path), artifact_path)
