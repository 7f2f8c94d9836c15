"""An empty, migrated MLflow sqlite store made once per test session and copied into each home.

A new MLflow sqlite store runs all of MLflow's Alembic migrations on first use (several seconds
on a busy machine, paid by every test with its own MLOOP_HOME); copying a migrated file costs
milliseconds and yields the same empty store: MLflow checks the schema version and moves on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mloop.settings import Settings

_SQLITE = "sqlite:///"
_template_folder: Path | None = None
_template: Path | None = None


def use_template_folder(folder: Path) -> None:
    """Where the session's template store is made (on first need); set by tests/conftest.py."""
    global _template_folder, _template
    _template_folder, _template = folder, None


def _template_store() -> Path | None:
    global _template
    if _template is None and _template_folder is not None:
        import mlflow  # start-up cost: only sessions that make an MLflow home pay for it

        path = _template_folder / "mlflow.db"
        uri = f"{_SQLITE}{path}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments()  # creates the tables and the Default experiment
        client.search_registered_models()
        _template = path
    return _template


def seed_mlflow(settings: Settings) -> Settings:
    """Give `settings` a migrated MLflow store by copy, when it is a sqlite file not made yet."""
    if not settings.tracking_uri.startswith(_SQLITE):
        return settings
    target = Path(settings.tracking_uri.removeprefix(_SQLITE))
    template = _template_store()
    if template is not None and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
    return settings
