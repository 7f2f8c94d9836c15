"""Serving fixtures: one small registered model per session, and a live server per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import modelkit


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> modelkit.TrainedModel:
    """`churn` version 1 at alias `production`, on its own MLOOP_HOME."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("serving-home"))
    return modelkit.train_and_register(settings)


@pytest.fixture(scope="session")
def strict_model(trained: modelkit.TrainedModel) -> modelkit.TrainedModel:
    """`strict` (same store): its encoder raises on unseen categories, a real model failure."""
    return modelkit.train_and_register(trained.settings, name="strict", strict=True)


@pytest.fixture(scope="module")
def live(trained: modelkit.TrainedModel) -> Iterator[ServerThread]:
    """A real uvicorn server for `churn@production`, model loaded."""
    app = create_app("churn@production", trained.settings)
    with ServerThread(app) as server:
        yield server
