"""Deployments over REST (reads need viewer, changes need ml_lead):

GET  /deployments                    list
POST /deployments                    apply a spec (JSON body; `expected_revision` guards it)
GET  /deployments/{name}             status: variants, versions, shares, live counts
GET  /deployments/{name}/history     every revision
POST /deployments/{name}/shift       {"to": VARIANT, "percent": P}
POST /deployments/{name}/promote     {"variant": optional}
POST /deployments/{name}/rollback    restore the previous revision
GET  /deployments/{name}/report      A/B report (JSON, or HTML with ?format=html)
DELETE /deployments/{name}           delete (history kept)
POST /deployments/{name}/predict     predict through the deployment (predictor)
POST /deployments/{name}/predict/batch

Live counts: when the serving side puts a `LiveCounts` on `app.state.mloop_deploy_counts`,
status and report use it; otherwise status counts from the prediction log. A change made here
is routed by this server at once (others pick it up within MLOOP_DEPLOYMENT_POLL_SECONDS).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from mloop.deploy.report import build_report
from mloop.deploy.report_html import render
from mloop.deploy.service import DeploymentService
from mloop.errors import ServiceUnavailableError, ValidationError
from mloop.security.access import Role, requires
from mloop.security.auth import caller
from mloop.serving.api_models import (
    ERRORS,
    DeploymentBatchRequest,
    DeploymentBatchResponse,
    DeploymentPredictRequest,
    DeploymentPredictResponse,
    errors,
    request_body,
)
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json, read_body
from mloop.serving.handlers import json_response
from mloop.serving.routes import DATA_PLANE
from mloop.serving.routes.predict import answer_batch, answer_one
from mloop.serving.state import serving_state

router = APIRouter(
    route_class=AuthFirstRoute, tags=["deployments"], responses={**ERRORS, **errors(400, 404, 409)}
)


class ShiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(..., min_length=1, description="Variant that gets the share.")
    percent: float = Field(..., ge=0, le=100)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str | None = None


def _service(request: Request) -> DeploymentService:
    service = serving_state(request).deployments
    if service is None:
        raise ServiceUnavailableError("the server is starting: deployments are not ready yet")
    return service


def _actor(request: Request) -> str:
    return caller(request) or "anonymous (auth off)"


def _live(request: Request) -> Any:
    return getattr(request.app.state, "mloop_deploy_counts", None)


async def _changed(request: Request) -> None:
    """Route a change at once in this server (others see it on their next poll)."""
    traffic = serving_state(request).traffic
    if traffic is not None:
        await run_in_threadpool(traffic.refresh)


@router.post(
    "/deployments/{name}/predict",
    response_model=DeploymentPredictResponse,
    openapi_extra={**request_body(DeploymentPredictRequest), **DATA_PLANE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict(request: Request, name: str) -> Response:
    """Predict one row through the deployment: the answer names the variant that gave it.

    The sticky key (`ab.sticky_key`, default `user_id`) comes from the body's top level, the
    row, or the `X-User-Id` header; the `ab.force_header` header (`X-Variant`) forces a variant.
    """
    return await answer_one(request, deployment=name)


@router.post(
    "/deployments/{name}/predict/batch",
    response_model=DeploymentBatchResponse,
    openapi_extra={**request_body(DeploymentBatchRequest), **DATA_PLANE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict_batch(request: Request, name: str) -> Response:
    """Predict many rows through the deployment; each row may go to another variant."""
    return await answer_batch(request, deployment=name)


@router.get("/deployments", dependencies=[requires(Role.VIEWER)])
async def list_deployments(request: Request) -> Response:
    """Every deployment with its current spec and revision."""
    found = await run_in_threadpool(_service(request).list)
    return json_response([d.to_dict() for d in found])


@router.post("/deployments", status_code=201, dependencies=[requires(Role.ML_LEAD)])
async def apply(request: Request) -> Response:
    """Apply a spec: create the deployment or write a new revision (409 if stale)."""
    state = serving_state(request)
    document, _ = parse_json(await read_body(request, state.settings.max_body_bytes))
    if not isinstance(document, dict):
        raise ValidationError("the body must be a JSON object: a deployment spec")
    expected = document.pop("expected_revision", None)
    if expected is not None and not isinstance(expected, int):
        raise ValidationError("expected_revision must be an integer")
    written = await run_in_threadpool(
        _service(request).apply, document, _actor(request), expected=expected
    )
    await _changed(request)
    return json_response(written.to_dict(), 201)


@router.get("/deployments/{name}", dependencies=[requires(Role.VIEWER)])
async def status(request: Request, name: str) -> Response:
    """Variants, resolved versions, traffic shares and counts."""
    return json_response(await run_in_threadpool(_service(request).status, name, _live(request)))


@router.get("/deployments/{name}/history", dependencies=[requires(Role.VIEWER)])
async def history(request: Request, name: str) -> Response:
    """Every revision of the deployment, oldest first."""
    revisions = await run_in_threadpool(_service(request).history, name)
    return json_response([r.to_dict() for r in revisions])


@router.post("/deployments/{name}/shift", dependencies=[requires(Role.ML_LEAD)])
async def shift(request: Request, name: str, body: ShiftBody) -> Response:
    """Give variant `to` `percent` of the traffic."""
    written = await run_in_threadpool(
        _service(request).shift, name, body.to, body.percent, _actor(request)
    )
    await _changed(request)
    return json_response(written.to_dict())


@router.post("/deployments/{name}/promote", dependencies=[requires(Role.ML_LEAD)])
async def promote(request: Request, name: str, body: PromoteBody | None = None) -> Response:
    """The candidate (or `variant`) becomes the primary."""
    written = await run_in_threadpool(
        _service(request).promote, name, _actor(request), body.variant if body else None
    )
    await _changed(request)
    return json_response(written.to_dict())


@router.post("/deployments/{name}/rollback", dependencies=[requires(Role.ML_LEAD)])
async def rollback(request: Request, name: str) -> Response:
    """Restore the previous revision's spec as a new revision."""
    written = await run_in_threadpool(_service(request).rollback, name, _actor(request))
    await _changed(request)
    return json_response(written.to_dict())


@router.delete("/deployments/{name}", dependencies=[requires(Role.ML_LEAD)])
async def delete(request: Request, name: str) -> Response:
    """Delete the deployment; its history stays."""
    revision = await run_in_threadpool(_service(request).delete, name, _actor(request))
    await _changed(request)
    return json_response({"name": name, "deleted": True, "revision": revision})


@router.get("/deployments/{name}/report", dependencies=[requires(Role.VIEWER)])
async def report(
    request: Request,
    name: str,
    format: Literal["json", "html"] = "json",
    min_labels: int = 30,
) -> Response:
    """Per-variant traffic, latency, accuracy with CIs, a significance test, a recommendation."""

    service = _service(request)
    live = _live(request)

    def build() -> dict[str, Any]:
        _, spec = service.get(name)
        counts = live.snapshot(name) if live is not None else None
        return build_report(
            service.records.database,
            spec,
            service.history(name),
            live=counts,
            min_labels=min_labels,
        )

    result = await run_in_threadpool(build)
    if format == "html":
        return HTMLResponse(render(result))
    return json_response(result)
