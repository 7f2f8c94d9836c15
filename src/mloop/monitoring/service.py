"""The monitoring loop inside one server app: live drift, feedback, quality, alerts, retraining.

`MonitoringService(state)` creates its metrics on the app's registry when the app is built;
`start()` (lifespan startup) opens the platform database, registers the live drift listener,
restores the quality gauges from the stored labels and resumes pending retraining jobs;
`stop()` (lifespan shutdown) stops the threads. Routes reach it as `monitoring_service(request)`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from starlette.requests import Request

from mloop.errors import ServiceUnavailableError
from mloop.monitoring.alerts import AlertHandler
from mloop.monitoring.feedback import FeedbackStore, LabelSpace
from mloop.monitoring.live import LiveDriftMonitor
from mloop.monitoring.notify import Notifier
from mloop.monitoring.quality import QualityMonitor
from mloop.monitoring.retrain import RetrainWorker
from mloop.registry.profile_store import load_profile
from mloop.registry.runs import version_run_id
from mloop.registry.tracking import configure_mlflow
from mloop.store import open_database

log = logging.getLogger("mloop.monitoring")


class MonitoringService:
    """Everything the monitoring routes share, started and stopped with the app."""

    def __init__(self, state: Any) -> None:
        self.state = state
        settings = state.settings
        registry = state.metrics.registry
        self.drift: LiveDriftMonitor | None = None
        if settings.monitoring:
            self.drift = LiveDriftMonitor(
                registry,
                self._profile_source,
                window_rows=settings.drift_window_rows,
                window_seconds=settings.drift_window_seconds,
                interval=settings.drift_interval_seconds,
                min_rows=settings.drift_min_rows,
            )
        self.quality = QualityMonitor(registry, settings=settings, window=settings.quality_window)
        self.notifier = Notifier(settings, registry)
        self.feedback: FeedbackStore | None = None
        self.retrain: RetrainWorker | None = None
        self.alerts: AlertHandler | None = None
        self.started = False
        self._profiles: dict[tuple[str, str], tuple[Any, list[Any] | None]] = {}

    def start(self) -> None:
        settings = self.state.settings
        database = open_database(settings)
        configure_mlflow(settings)
        log_writer = self.state.prediction_log
        self.feedback = FeedbackStore(
            database, flush=log_writer.flush if log_writer else None, labels=self.label_space
        )
        self.quality.database = database
        self.retrain = RetrainWorker(settings, database)
        self.alerts = AlertHandler(
            settings, database, self.retrain, self.notifier, served=self._served
        )
        if self.drift is not None:
            self.state.listeners.append(self.drift)
            self.drift.start()
        self.retrain.start()
        threading.Thread(target=self._restore_quality, name="mloop-quality", daemon=True).start()
        self.started = True

    def stop(self) -> None:
        if self.drift is not None:
            if self.drift in self.state.listeners:
                self.state.listeners.remove(self.drift)
            self.drift.stop()
        if self.retrain is not None:
            self.retrain.stop()
        self.notifier.close()

    def require(self) -> MonitoringService:
        if not self.started:
            raise ServiceUnavailableError("monitoring is not started yet")
        return self

    # -- hooks -------------------------------------------------------------------------------

    def _served(self) -> tuple[str, str] | None:
        model = self.state.runtime.model
        return (model.name, model.version) if model is not None else None

    def profile_for(self, name: str, version: str) -> tuple[Any, list[Any] | None]:
        """(profile or None, classes) of a version: what POST /monitor/drift compares with."""
        return self._profile_source(name, version)

    def served_classes(self, name: str, version: str) -> list[Any] | None:
        model = self._served_model(name, version)
        return model.classes if model is not None else None

    def label_space(self, name: str, version: str) -> LabelSpace | None:
        """What a label of this version may be, from the loaded model (None: not served here)."""
        model = self._served_model(name, version)
        if model is None:
            return None
        return LabelSpace(tuple(model.classes) if model.classes is not None else None)

    def _served_model(self, name: str, version: str) -> Any:
        """The loaded model of a version this server serves (default or a variant), or None."""
        pool = getattr(self.state, "pool", None)
        runtimes = pool.runtimes() if pool is not None else [self.state.runtime]
        for runtime in runtimes:
            model = runtime.model
            if model is not None and (model.name, model.version) == (name, version):
                return model
        return None

    def _profile_source(self, name: str, version: str) -> tuple[Any, list[Any] | None]:
        """The reference profile of a version (from its training run) and its classes, cached."""
        key = (name, version)
        if key not in self._profiles:
            self._profiles[key] = self._load_profile(name, version)
        return self._profiles[key]

    def _load_profile(self, name: str, version: str) -> tuple[Any, list[Any] | None]:
        model = self.state.runtime.model
        if model is not None and (model.name, model.version) == (name, version):
            run_id, classes = model.run_id, model.classes
        else:
            run_id, classes = version_run_id(self.state.settings, name, version), None
        if not run_id:
            return None, classes
        return load_profile(run_id), classes

    def _restore_quality(self) -> None:
        try:
            self.quality.refresh_all()
        except Exception:
            log.exception("cannot restore the quality gauges from stored labels")


def monitoring_service(request: Request) -> MonitoringService:
    """The app's monitoring service, or 503 when the app has none or it is not started."""
    service = getattr(request.app.state, "mloop_monitoring", None)
    if service is None:
        raise ServiceUnavailableError("this server runs without monitoring")
    return service.require()
