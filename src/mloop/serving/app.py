"""The model server app: `create_app(model_ref)` for one process, `create_app_from_env()` for
uvicorn workers (`uvicorn --factory mloop.serving.app:create_app_from_env`).

Startup never waits for the model: it loads in a background thread (with fallbacks and
retries), so `/health` answers at once and `/ready` says when predictions can flow. Shutdown
stops the loader and drains the prediction log.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mloop import __version__
from mloop.errors import ConfigError
from mloop.serving.handlers import install_handlers
from mloop.serving.loader import check_reference
from mloop.serving.metrics import ServingMetrics
from mloop.serving.routes import predict, status
from mloop.serving.runtime import RETRY_SECONDS, ModelRuntime
from mloop.serving.state import ServingState
from mloop.settings import Settings, get_settings

MODEL_ENV = "MLOOP_SERVE_MODEL"


def create_app(
    model_ref: str | None = None,
    settings: Settings | None = None,
    *,
    log_predictions: bool = True,
    retry_interval: float = RETRY_SECONDS,
) -> FastAPI:
    """A FastAPI app serving `model_ref` (or only `settings.fallback_model_uris` when None).

    Raises ValidationError for a reference that is not `NAME@ALIAS`, `NAME/VERSION` or an
    MLflow URI, and ConfigError when there is nothing to serve.
    """
    settings = settings or get_settings()
    if model_ref is not None:
        model_ref = check_reference(model_ref)
    runtime = ModelRuntime(model_ref, settings, retry_interval=retry_interval)
    state = ServingState(settings=settings, runtime=runtime, metrics=ServingMetrics())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if log_predictions:
            from mloop.monitoring.prediction_log import PredictionLogWriter
            from mloop.store import open_database

            state.prediction_log = PredictionLogWriter(
                open_database(settings),
                log_inputs=settings.log_inputs,
                on_drop=state.metrics.log_dropped.inc,
            )
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()
            if state.prediction_log is not None:
                state.prediction_log.close()

    app = FastAPI(
        title="mloop model server",
        description=f"Predictions from {model_ref or 'the configured fallback models'}.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.mloop = state
    install_handlers(app)
    app.include_router(status.router)
    app.include_router(predict.router)
    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: the model reference comes from MLOOP_SERVE_MODEL."""
    model_ref = os.environ.get(MODEL_ENV) or None
    settings = get_settings()
    if model_ref is None and not settings.fallback_model_uris:
        raise ConfigError(
            f"{MODEL_ENV} is not set", hint=f"{MODEL_ENV}=churn@production uvicorn --factory ..."
        )
    return create_app(model_ref, settings)
