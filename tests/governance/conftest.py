"""Governance fixtures: one trained, registered `churn` per module on its own MLOOP_HOME."""

from __future__ import annotations

import pytest

from tests.support import govkit


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory):
    """(settings, keys by identity): churn/1 in Production (before any policy), then the
    policy written, people added, and churn/2 trained (major change) as the candidate."""
    home = tmp_path_factory.mktemp("governed") / "home"
    settings = govkit.settings_at(home)
    yield from govkit.governed_home(settings, home.parent / "churn.csv")
