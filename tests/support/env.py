"""Environment isolation: no MLOOP_* variable of the developer's shell leaks into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mloop.settings import Settings, reset_settings
from tests.support.stores import seed_mlflow

KEEP = ("MLOOP_REQUIRE_SERVICES",)


def scrub(patch: pytest.MonkeyPatch) -> None:
    """Remove every MLOOP_* variable (except MLOOP_REQUIRE_SERVICES) for the patch's life."""
    for key in list(os.environ):
        if key.startswith("MLOOP_") and key not in KEEP:
            patch.delenv(key)


def clean_environ(**extra: str) -> dict[str, str]:
    """A copy of os.environ without MLOOP_* variables, plus `extra`: for subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env.update(extra)
    return env


def reset_mlflow() -> None:
    """Forget MLflow's process-wide state: tracking and registry URIs, active experiment.

    `mlflow.set_experiment` keeps the experiment id for the process (and in
    MLFLOW_EXPERIMENT_ID); the next test's store has no such experiment, so a run started
    there would fail with "No Experiment with id=1". MLflow has no public way to unset it.
    """
    import mlflow  # start-up cost: only the tests that use MLflow pay for importing it
    from mlflow.tracking import fluent

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@contextmanager
def home_env(home: Path, patch: pytest.MonkeyPatch | None = None) -> Iterator[Settings]:
    """MLOOP_HOME=`home` on a scrubbed environment; yields the Settings read from it.

    For module- or session-scoped fixtures (function-scoped ones can pass `monkeypatch`).
    """
    with pytest.MonkeyPatch.context() as own:
        patch = patch or own
        scrub(patch)
        patch.setenv("MLOOP_HOME", str(home))
        patch.setenv("GIT_PYTHON_REFRESH", "quiet")
        reset_settings()
        reset_mlflow()  # a new home: nothing of the previous store's experiments applies
        settings = Settings()
        settings.ensure_home()
        seed_mlflow(settings)
        try:
            yield settings
        finally:
            reset_settings()
            reset_mlflow()
