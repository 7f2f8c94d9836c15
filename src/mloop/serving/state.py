"""What the routes of one server app share: settings, model runtime, metrics, prediction log."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from mloop.monitoring.prediction_log import PredictionLogWriter
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

    @property
    def version_label(self) -> str:
        """The model_version metric label right now ("none" while no model is loaded)."""
        model = self.runtime.model
        return model.version if model is not None else NO_MODEL


def serving_state(request: Request) -> ServingState:
    return request.app.state.mloop
