"""The reference profile as an MLflow run artifact: logged at training, loaded for monitoring.

The profile itself (`mloop.stats.profile.ReferenceProfile`) knows nothing of MLflow; this
module is where it is written to and read from a run (`PROFILE_ARTIFACT`).
"""

from __future__ import annotations

import logging

from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings
from mloop.stats.profile import ReferenceProfile

log = logging.getLogger("mloop.monitoring")

PROFILE_ARTIFACT = "monitoring/reference_profile.json"


def log_profile(profile: ReferenceProfile) -> None:
    """Log the profile into the active MLflow run as `PROFILE_ARTIFACT`."""
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    mlflow.log_text(profile.to_json(), PROFILE_ARTIFACT)


def load_profile(run_id: str, settings: Settings | None = None) -> ReferenceProfile | None:
    """The profile logged with a run, or None when the run has none (trained before profiles).

    Reads from `settings`' tracking store when given; otherwise from the tracking URI already
    configured, or, when none is, from the environment's settings (`MLOOP_HOME`, ...), so a
    plain script needs no `configure_mlflow()` first.
    """
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    if settings is not None or not mlflow.is_tracking_uri_set():
        configure_mlflow(settings)
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        log.info("run %s has no reference profile: %s", run_id, str(exc).splitlines()[0])
        return None
    return ReferenceProfile.from_json(text)


__all__ = ["PROFILE_ARTIFACT", "load_profile", "log_profile"]
