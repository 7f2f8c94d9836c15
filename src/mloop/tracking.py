"""Point MLflow at the configured tracking and registry store."""

from __future__ import annotations

from pathlib import Path

from mloop.settings import Settings, get_settings


def configure_mlflow(settings: Settings | None = None) -> Settings:
    """Set MLflow's tracking and registry URIs from settings; create the local folders."""
    import mlflow

    settings = settings or get_settings()
    settings.ensure_home()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return settings


def ensure_experiment(name: str, settings: Settings | None = None) -> str:
    """Return the id of experiment `name`, creating it with mloop's artifact root."""
    import mlflow

    settings = configure_mlflow(settings)
    client = mlflow.MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    root = settings.artifact_root
    location = root if "://" in root else Path(root).resolve().as_uri()
    return client.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}")
