"""Helpers shared by the jobs tests (imported by name: tests/jobs is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mloop.settings import Settings


def job_settings(trained, tmp_path: Path, **changes) -> Settings:
    """The model's settings with a fresh platform database and fast job timings."""
    values = {
        "database_url": f"sqlite:///{tmp_path / 'jobs.db'}",
        "jobs_poll_seconds": 0.05,
        "jobs_lease_seconds": 5.0,
        "jobs_retry_backoff_seconds": 0.05,
    }
    values.update(changes)
    return trained.settings.model_copy(update=values)


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, every: float = 0.05):
    """Poll until `predicate()` is truthy; return its value, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(every)
