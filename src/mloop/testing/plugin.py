"""The pytest plugin (entry point `pytest11: mloop`): fixtures for a project's own model.

Loaded into every pytest run once mloop is installed, so it registers two options and defines
fixtures, nothing else: no autouse fixture, no heavy import until a fixture is used.

    --mloop-project PATH   the project folder (default: pytest's rootdir)
    --mloop-model REF      the model to test (default: the latest registered version of the
                           training config's `register.name`)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CONFIG_FILE = "params.yaml"
CONTRACT_FILE = "features.yaml"
LOAD_TIMEOUT = 120.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mloop", "mloop: test a project's own model")
    group.addoption("--mloop-project", default=None, help="project folder (default: rootdir)")
    group.addoption("--mloop-model", default=None, help="model reference, e.g. churn/3")


@pytest.fixture(scope="session")
def mloop_project(pytestconfig: pytest.Config) -> Path:
    """The project folder: `--mloop-project`, else pytest's rootdir."""
    given = pytestconfig.getoption("mloop_project")
    return Path(given).resolve() if given else Path(pytestconfig.rootpath)


@pytest.fixture(scope="session")
def mloop_settings(mloop_project: Path):
    """Settings of the project: MLOOP_HOME when set, else `<project>/.mloop`."""
    from mloop.settings import Settings

    if os.environ.get("MLOOP_HOME"):
        return Settings()
    return Settings(home=mloop_project / ".mloop")


@pytest.fixture(scope="session")
def mloop_contract(mloop_project: Path):
    """The project's features.yaml as a FeatureContract."""
    from mloop.features.contract import FeatureContract  # lazy: pandas, pydantic models

    return FeatureContract.load(mloop_project / CONTRACT_FILE)


@pytest.fixture(scope="session")
def mloop_model(pytestconfig: pytest.Config, mloop_project: Path, mloop_settings):
    """The project's model (`.predict(rows) -> list`): `--mloop-model`, else the latest
    registered version of the training config's model name."""
    from mloop.pipeline.config import load_config  # lazy: sklearn
    from mloop.testing.model import load_project_model

    config_path = mloop_project / CONFIG_FILE
    config = load_config(config_path if config_path.is_file() else None)
    ref = pytestconfig.getoption("mloop_model") or config.register.name
    return load_project_model(mloop_settings, ref, target=config.data.target)


@pytest.fixture(scope="session")
def mloop_client(mloop_model, mloop_settings) -> Iterator[Any]:
    """An httpx client (over ASGI, in process) to an mloop server serving `mloop_model`."""
    from mloop.serving.app import create_app  # lazy: fastapi, the whole server
    from mloop.testing.asgi import asgi_client

    app = create_app(mloop_model.ref, mloop_settings, log_predictions=False)
    with asgi_client(app, LOAD_TIMEOUT) as client:
        app.state.mloop.runtime.wait_until_settled(LOAD_TIMEOUT)
        yield client
