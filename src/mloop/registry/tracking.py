"""Point MLflow at the configured tracking and registry store."""

from __future__ import annotations

import io
import logging
import os
from contextlib import redirect_stderr
from functools import lru_cache
from pathlib import Path
from typing import Any

from mloop.settings import Settings, get_settings


def configure_mlflow(settings: Settings | None = None) -> Settings:
    """Set MLflow's tracking and registry URIs from settings; create the local folders.

    `MLOOP_S3_ENDPOINT_URL` becomes MLflow's `MLFLOW_S3_ENDPOINT_URL` (which it reads when it
    opens an `s3://` artifact store) unless that is already set. MLflow's download progress
    bar (drawn whenever tqdm is installed) is off unless MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    says otherwise: it would land in the server's JSON log lines and in `--json` output.
    """
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    settings = settings or get_settings()
    settings.ensure_home()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.s3_endpoint_url and not os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return settings


def ensure_experiment(name: str, settings: Settings | None = None) -> str:
    """Return the id of experiment `name`, creating it with mloop's artifact root.

    Without one (a remote tracking URI and no MLOOP_ARTIFACT_ROOT) the experiment gets no
    artifact location, so its artifacts go where the tracking server says: its artifact
    proxy (`mlflow-artifacts:`) or its `--default-artifact-root`, which every teammate reaches.
    """
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    settings = configure_mlflow(settings)
    client = mlflow.MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    root = settings.artifact_root
    if not root:
        return client.create_experiment(name)
    location = root if "://" in root else Path(root).resolve().as_uri()
    return client.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}")


def register_version(model_uri: str, name: str, tags: dict[str, str]) -> str:
    """Register `model_uri` as a new version of `name`, tag it, and return the version.

    MLflow prints "Successfully registered model ..." to stderr itself (its `eprint`, not
    logging); those lines go to mloop's log at debug level instead of the user's terminal.
    """
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    captured = io.StringIO()
    with redirect_stderr(captured):
        version = mlflow.register_model(model_uri, name)
    for line in captured.getvalue().splitlines():
        logging.getLogger("mloop.registry.tracking").debug("mlflow: %s", line)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    return str(version.version)


def client_for(settings: Settings) -> Any:
    """An `MlflowClient` bound to these settings' tracking and registry store (one per URI)."""
    return _client(settings.tracking_uri)


@lru_cache(maxsize=16)
def _client(uri: str) -> Any:
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
