"""Security fixtures: a small registered model and identities with keys, on one MLOOP_HOME."""

from __future__ import annotations

import pytest

from tests.support import govkit, modelkit


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """(home, keys by identity): `churn@production` registered, people added with keys."""
    home = tmp_path_factory.mktemp("secured") / "home"
    settings = govkit.settings_at(home)
    modelkit.train_and_register(settings)
    keys = govkit.add_people(settings)
    yield home, keys
    import mlflow

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
