"""The model server app: `create_app(model_ref)` for one process, `create_app_from_env()` for
uvicorn workers (`uvicorn --factory mloop.serving.app:create_app_from_env`).

Startup never waits for the model: it loads in a background thread (with fallbacks and
retries), so `/health` answers at once and `/ready` says when predictions can flow. Shutdown
stops the loader and drains the prediction log.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from mloop import __version__
from mloop.errors import ConfigError
from mloop.jobs.service import JobService
from mloop.monitoring.service import MonitoringService
from mloop.registry.resolve import check_reference
from mloop.serving.fastpath import ServingApp
from mloop.serving.handlers import install_handlers
from mloop.serving.metrics import ServingMetrics
from mloop.serving.pool import ModelPool
from mloop.serving.routes import (
    alerts,
    deployments,
    feedback,
    governance,
    invocations,
    models,
    monitor,
    predict,
    status,
    stream,
    v2,
)
from mloop.serving.routes import jobs as job_routes
from mloop.serving.runtime import RETRY_SECONDS, ModelRuntime
from mloop.serving.security import SecurityLayer
from mloop.serving.state import ServingState
from mloop.serving.traffic import Traffic
from mloop.settings import Settings, get_settings

MODEL_ENV = "MLOOP_SERVE_MODEL"
# The cyclic GC's youngest generation is collected after this many more container objects
# were made than freed (Python's default: 700). A server keeps a few thousand such objects in
# flight (requests, futures, frames), which at 700 were collected and promoted over and over:
# about 5% of the server's CPU per request under load (benchmarks/serving.py); at 10,000 the
# in-flight objects mostly die before a collection sees them.
YOUNG_GC_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Collect the youngest generation less often (never more often than configured)."""
    young, *older = gc.get_threshold()
    if 0 < young < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, *older)


def create_app(
    model_ref: str | None = None,
    settings: Settings | None = None,
    *,
    log_predictions: bool = True,
    retry_interval: float = RETRY_SECONDS,
) -> FastAPI:
    """A FastAPI app serving `model_ref` (or only `settings.fallback_model_uris` when None).

    Without `model_ref` (and without fallback URIs) the server serves the default deployment:
    `/predict` follows its traffic policy and the primary variant's model is the default
    runtime (for `/invocations`, `/v2`, `/predict/stream`). Deployments always answer on
    `/deployments/{name}/predict`.

    Raises ValidationError for a reference that is not `NAME@ALIAS`, `NAME/VERSION` or an
    MLflow URI, and ConfigError when there is nothing to serve.
    """
    settings = settings or get_settings()
    serves_default = model_ref is None
    if model_ref is not None:
        model_ref = check_reference(model_ref)
    elif not settings.fallback_model_uris:
        model_ref = default_deployment(settings)[1]
    runtime = ModelRuntime(model_ref, settings, retry_interval=retry_interval)
    state = ServingState(settings=settings, runtime=runtime, metrics=ServingMetrics())
    state.pool = ModelPool(settings, runtime, retry_interval=retry_interval, metrics=state.metrics)
    # Deployments: routing table, live counts, shadow calls, canary timer (serving.traffic).
    traffic = Traffic(settings, state.pool, state.metrics, serves_default=serves_default)
    state.traffic = traffic
    security = SecurityLayer(settings)  # auth, rate limits, API-call audit
    jobs = JobService(settings, state)  # async jobs: embedded worker or Celery dispatch
    monitoring = MonitoringService(state)  # live drift, feedback, alerts, retraining

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
        _tune_gc()
        security.start(_app)
        await run_in_threadpool(traffic.refresh)  # routes, and a runtime per variant
        state.pool.start()  # the served model, then every deployment variant's
        traffic.start()  # poll for deployment changes, canary timer
        state.start_serving()  # prediction cache
        jobs.start()
        monitoring.start()
        try:
            yield
        finally:
            traffic.stop()
            jobs.stop()
            monitoring.stop()
            state.pool.stop()
            await state.stop_serving()  # batchers and prediction cache
            if state.prediction_log is not None:
                state.prediction_log.close()
            await security.stop(_app)

    app = ServingApp(  # FastAPI, with a fast path for POST /predict (serving.fastpath)
        title="mloop model server",
        description=f"Predictions from {model_ref or 'the configured fallback models'}.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.mloop = state
    app.state.mloop_jobs = jobs
    app.state.mloop_monitoring = monitoring
    app.state.mloop_deploy_counts = traffic.counts  # read by GET /deployments/{name}
    install_handlers(app)
    security.install(app)
    app.include_router(status.router)
    app.include_router(predict.router)
    app.include_router(governance.router)
    app.include_router(models.router)
    app.include_router(stream.router)  # POST /predict/stream (NDJSON)
    app.include_router(invocations.router)  # POST /invocations (MLflow scoring protocol)
    app.include_router(v2.router)  # /v2/... (Open Inference Protocol)
    app.include_router(job_routes.router)
    app.include_router(monitor.router)
    app.include_router(feedback.router)
    app.include_router(alerts.router)
    app.include_router(deployments.router)
    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: the model reference comes from MLOOP_SERVE_MODEL
    (unset: the default deployment)."""
    return create_app(os.environ.get(MODEL_ENV) or None, get_settings())


def default_deployment(settings: Settings) -> tuple[str, str]:
    """(name, primary variant's model) of the default deployment; ConfigError when none."""
    from mloop.deploy.service import DeploymentService
    from mloop.deploy.spec import parse_spec

    found = DeploymentService(settings).default()
    if found is None:
        raise ConfigError(
            f"nothing to serve: no model reference ({MODEL_ENV}) and no default deployment",
            hint="pass one (mloop serve churn@production), mark a deployment `default: true` "
            "(mloop deploy apply SPEC.yaml), or set MLOOP_FALLBACK_MODEL_URIS",
        )
    spec = parse_spec(found.spec, source=f"deployment '{found.name}'")
    return found.name, spec.variant(spec.primary).model
