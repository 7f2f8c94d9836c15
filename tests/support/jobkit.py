"""Settings for the jobs tests: a fresh platform database and fast job timings."""

from __future__ import annotations

from pathlib import Path

from mloop.settings import Settings
from tests.support.waiting import wait_for

__all__ = ["job_settings", "wait_for"]


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
