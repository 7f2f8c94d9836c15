"""Deployment fixtures: a registry with `churn` versions 1 (production) and 2 (candidate)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import deploykit  # noqa: E402

from mloop.deploy.service import DeploymentService  # noqa: E402
from mloop.settings import Settings  # noqa: E402


@pytest.fixture
def registry_home(mloop_home: Settings) -> Iterator[Settings]:
    deploykit.register_versions(mloop_home)
    yield mloop_home


@pytest.fixture
def service(registry_home: Settings) -> DeploymentService:
    return DeploymentService(registry_home)
