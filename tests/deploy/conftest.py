"""Deployment fixtures: a registry with `churn` versions 1 (production) and 2 (candidate)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mloop.deploy.service import DeploymentService
from mloop.settings import Settings
from tests.support import deploykit


@pytest.fixture
def registry_home(mloop_home: Settings) -> Iterator[Settings]:
    deploykit.register_versions(mloop_home)
    yield mloop_home


@pytest.fixture
def service(registry_home: Settings) -> DeploymentService:
    return DeploymentService(registry_home)
