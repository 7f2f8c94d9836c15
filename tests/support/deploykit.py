"""A registry with versions but no model files: deployments resolve references, never load them."""

from __future__ import annotations

from pathlib import Path

from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings

EXAMPLES = Path(__file__).parents[2] / "examples" / "deployments"


def register_versions(settings: Settings, name: str = "churn", count: int = 2) -> list[str]:
    """Register `count` versions of `name`; v1 is production, the last is candidate."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    source = Path(settings.home) / "artifacts" / name
    source.mkdir(parents=True, exist_ok=True)
    versions = [
        str(client.create_model_version(name, source=str(source)).version) for _ in range(count)
    ]
    client.set_registered_model_alias(name, "production", versions[0])
    client.set_registered_model_alias(name, "candidate", versions[-1])
    return versions
