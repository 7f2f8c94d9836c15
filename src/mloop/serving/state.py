"""What the routes of one server app share: settings, model runtime, metrics, prediction log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter
from mloop.serving.metrics import NO_MODEL, ServingMetrics
from mloop.serving.runtime import ModelRuntime
from mloop.settings import Settings


@dataclass
class ServingState:
    """Held on `app.state.mloop`; the prediction log is attached at startup."""

    settings: Settings
    runtime: ModelRuntime
    metrics: ServingMetrics
    prediction_log: PredictionLogWriter | None = None
    # Called with every answered batch and its validated frame (drift, shadow traffic, ...).
    # Listeners run on the response path, so they only enqueue work for their own threads.
    listeners: list[Callable[[PredictionBatch, Any], None]] = field(default_factory=list)

    def publish(self, batch: PredictionBatch, frame: Any) -> None:
        """Hand an answered batch to the prediction log and every listener; never raises."""
        if self.prediction_log is not None:
            self.prediction_log.submit(batch)
        for listener in self.listeners:
            try:
                listener(batch, frame)
            except Exception:
                logging.getLogger("mloop.serving").exception("prediction listener failed")

    @property
    def version_label(self) -> str:
        """The model_version metric label right now ("none" while no model is loaded)."""
        model = self.runtime.model
        return model.version if model is not None else NO_MODEL


def serving_state(request: Request) -> ServingState:
    return request.app.state.mloop
