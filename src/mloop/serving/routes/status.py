"""Liveness, readiness, metrics and model information."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from mloop.security.access import Role, requires
from mloop.serving.api_models import ErrorBody, HealthResponse, ModelInfo, ReadyResponse
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.handlers import json_response
from mloop.serving.runtime import LOADING
from mloop.serving.state import serving_state

router = APIRouter(route_class=AuthFirstRoute)


@router.get(
    "/health",
    response_model=HealthResponse,
    tags=["status"],
    dependencies=[requires(Role.PUBLIC)],
)
async def health(request: Request) -> Response:
    """Liveness: the process answers (always 200), and whether a model is loaded."""
    runtime = serving_state(request).runtime
    return json_response({"status": "healthy", "model_loaded": runtime.ready})


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "Loading, or no model loadable."}},
    tags=["status"],
    dependencies=[requires(Role.PUBLIC)],
)
async def ready(request: Request) -> Response:
    """Readiness: 200 once a model serves; 503 with the reason while loading or failing.

    A failed hot swap leaves it 200 (the old version keeps serving); `swap` says what happened.
    A writer whose database is failing leaves it 200 too (predictions are still answered, their
    rows wait in memory): `status` is then "degraded" and `degraded` names the writers.
    """
    state = serving_state(request)
    runtime = state.runtime
    model = runtime.model
    if model is None:
        status = "loading" if runtime.state == LOADING else "unavailable"
        return json_response({"status": status, "reason": runtime.reason}, 503)
    body = {
        "status": "ready",
        "model_name": model.name,
        "model_version": model.version,
        "swap": runtime.swap_status(),  # following the alias: last swap, last failure
    }
    degraded = {
        name: writer.outage.to_dict()
        for name, writer in (("prediction_log", state.prediction_log), ("audit", state.audit))
        if writer is not None and writer.outage.active
    }
    if degraded:
        body["status"], body["degraded"] = "degraded", degraded
    return json_response(body)


@router.get(
    "/metrics",
    tags=["status"],
    response_class=Response,
    dependencies=[requires(Role.PUBLIC)],
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    metrics = serving_state(request).metrics
    return Response(metrics.render(), media_type=metrics.content_type)


@router.get(
    "/model/info",
    response_model=ModelInfo,
    responses={503: {"model": ErrorBody}},
    tags=["model"],
    dependencies=[requires(Role.VIEWER)],
)
async def model_info(request: Request) -> Response:
    """The served model: registry name and version, URI, flavor, features and classes."""
    runtime = serving_state(request).runtime
    model = runtime.require()
    return json_response(
        {
            "name": model.name,
            "version": model.version,
            "alias": model.alias,
            "uri": model.uri,
            "source": model.source,
            "flavor": model.flavor,
            "run_id": model.run_id,
            "loaded_at": model.loaded_at,
            "features": model.schema.to_list(),
            "classes": model.classes,
            "fallback_used": runtime.fallback_used,
            "load_failures": [f.to_dict() for f in runtime.failures],
            "swap": runtime.swap_status(),
        }
    )
