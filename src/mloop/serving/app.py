"""The model server app: `create_app(model_ref)` for one process, `create_app_from_env()` for
uvicorn workers (`uvicorn --factory mloop.serving.app:create_app_from_env`; `mloop serve`'s
workers use `mloop.platform:serve_worker_app`, on the platform's services).

Startup never waits for the model: it loads in a background thread (with fallbacks and
retries), so `/health` answers at once and `/ready` says when predictions can flow. Shutdown
stops the loader and drains the prediction log.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from mloop import __version__
from mloop.deploy.service import DeploymentService
from mloop.deploy.spec import parse_spec
from mloop.errors import ConfigError
from mloop.governance.approvals import ApprovalService
from mloop.governance.audit_writer import AuditWriter
from mloop.governance.integrity import IntegrityAudit
from mloop.jobs.queue import JobQueue
from mloop.jobs.service import JobService
from mloop.logs import RequestIdMiddleware
from mloop.monitoring.prediction_log import PredictionLogWriter
from mloop.monitoring.service import MonitoringService
from mloop.registry.resolve import check_reference
from mloop.serving import console
from mloop.serving.fastpath import ServingApp
from mloop.serving.handlers import install_handlers
from mloop.serving.metrics import ServingMetrics
from mloop.serving.openapi import install_openapi
from mloop.serving.pool import ModelPool
from mloop.serving.query import single_query_values
from mloop.serving.routes import (
    alerts,
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
from mloop.serving.routes import deployments as deployment_routes
from mloop.serving.routes import jobs as job_routes
from mloop.serving.runtime import RETRY_SECONDS, ModelRuntime
from mloop.serving.security import SecurityLayer
from mloop.serving.state import ServingState
from mloop.serving.traffic import Traffic
from mloop.settings import Settings, get_settings
from mloop.spool import spool_directory
from mloop.store import Database, open_database

MODEL_ENV = "MLOOP_SERVE_MODEL"
SETTLE_SECONDS = 600.0  # a bound on the first load attempt of a worker (a safety net)


def create_app(
    model_ref: str | None = None,
    settings: Settings | None = None,
    *,
    log_predictions: bool = True,
    retry_interval: float = RETRY_SECONDS,
    database: Database | None = None,
    approvals: ApprovalService | None = None,
    deployments: DeploymentService | None = None,
    freeze_heap: bool = False,
    audit_writer: AuditWriter | None = None,
    job_queue: JobQueue | None = None,
    settle_before_serving: bool = False,
) -> ServingApp:
    """A FastAPI app serving `model_ref` (or only `settings.fallback_model_uris` when None).

    Without `model_ref` (and without fallback URIs) the server serves the default deployment:
    `/predict` follows its traffic policy and the primary variant's model is the default
    runtime (for `/invocations`, `/v2`, `/predict/stream`). Deployments always answer on
    `/deployments/{name}/predict`.

    `database` (the prediction log's), `approvals`, `deployments`, `audit_writer` (API
    calls, when audited) and `job_queue` are the platform's (mloop.platform hands its own);
    by default the app builds its own once at startup. Building or running the app changes
    nothing in the interpreter: a serving process's GC tuning is `mloop serve`'s
    (serving.server `tune_gc`, and `freeze_heap=True`: `gc.freeze()` after each model load).

    `settle_before_serving=True` (each worker of `mloop serve --workers N`) ends the lifespan
    startup only once the first model load attempt finished, so uvicorn accepts no connection
    on this process before it can answer: a worker restarted after a crash does not answer
    503 "loading" while its siblings could have served the request.

    Raises ValidationError for a reference that is not `NAME@ALIAS`, `NAME/VERSION` or an
    MLflow URI, and ConfigError when there is nothing to serve.
    """
    settings = settings or get_settings()
    serves_default = model_ref is None
    if model_ref is not None:
        model_ref = check_reference(model_ref)
    elif not settings.fallback_model_uris:
        model_ref = default_deployment(settings, deployments)[1]
    runtime = ModelRuntime(
        model_ref,
        settings,
        retry_interval=retry_interval,
        freeze_heap=freeze_heap,
        on_refused=IntegrityAudit(settings),  # a version with changed files: audited
    )
    metrics = ServingMetrics()
    pool = ModelPool(settings, runtime, retry_interval=retry_interval, metrics=metrics)
    state = ServingState(settings=settings, runtime=runtime, metrics=metrics, pool=pool)
    # Deployments: routing table, live counts, shadow calls, canary timer (serving.traffic).
    traffic = Traffic(settings, pool, metrics, serves_default=serves_default)
    state.traffic, state.deploy_counts = traffic, traffic.counts
    security = SecurityLayer(settings, audit_writer)  # auth, rate limits, API-call audit
    jobs = state.jobs = JobService(settings, state, job_queue)  # embedded worker or Celery
    monitoring = state.monitoring = MonitoringService(state)  # drift, feedback, alerts, retrain

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if log_predictions:
            log_database = database or open_database(settings)
            state.prediction_log = PredictionLogWriter(
                log_database,
                log_inputs=settings.log_inputs,
                on_drop=metrics.log_dropped.inc,
                on_write_error=metrics.log_write_errors.inc,
                spool_dir=spool_directory(settings.home, log_database.url, "prediction-log"),
            )
        state.approvals = approvals or await run_in_threadpool(ApprovalService, settings)
        state.deployments = deployments or await run_in_threadpool(DeploymentService, settings)
        security.start(state)
        await run_in_threadpool(traffic.refresh)  # routes, and a runtime per variant
        pool.start()  # the served model, then every deployment variant's
        if settle_before_serving:  # siblings serve meanwhile: accept nothing before a model
            await run_in_threadpool(runtime.wait_until_settled, SETTLE_SECONDS)
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
            pool.stop()
            await state.stop_serving()  # batchers and prediction cache
            if state.prediction_log is not None:
                state.prediction_log.close()
            await security.stop(state)

    app = ServingApp(  # FastAPI, with a fast path for the fast data-plane routes
        title="mloop model server",
        description=f"Predictions from {model_ref or 'the configured fallback models'}.",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(single_query_values)],  # ?a=1&a=2 on a scalar: 422, not a=2
    )
    app.mloop = state  # what the routes read (serving.state.serving_state)
    # The same objects where code outside serving finds them by name on the app's state.
    app.state.mloop = state
    app.state.mloop_jobs = jobs
    app.state.mloop_monitoring = monitoring
    app.state.mloop_deploy_counts = traffic.counts
    install_handlers(app)
    security.install(app, state)
    # outermost: X-Request-ID in and out, bound for log lines, error bodies and audit rows
    app.add_middleware(RequestIdMiddleware, log_requests=settings.log_requests)
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
    app.include_router(deployment_routes.router)
    console.install(app)  # the web console at /ui/ (and / redirects there)
    install_openapi(app, settings, auth=security.enabled)  # schemes, 401/403/429, error body
    return app


def create_app_from_env() -> ServingApp:
    """App factory for uvicorn workers: the model reference comes from MLOOP_SERVE_MODEL
    (unset: the default deployment)."""
    return create_app(os.environ.get(MODEL_ENV) or None, get_settings())


def default_deployment(
    settings: Settings, deployments: DeploymentService | None = None
) -> tuple[str, str]:
    """(name, primary variant's model) of the default deployment; ConfigError when none."""
    found = (deployments or DeploymentService(settings)).default()
    if found is None:
        raise ConfigError(
            f"nothing to serve: no model reference ({MODEL_ENV}) and no default deployment",
            hint="pass one (mloop serve churn@production), mark a deployment `default: true` "
            "(mloop deploy apply SPEC.yaml), or set MLOOP_FALLBACK_MODEL_URIS",
        )
    spec = parse_spec(found.spec, source=f"deployment '{found.name}'")
    return found.name, spec.variant(spec.primary).model
