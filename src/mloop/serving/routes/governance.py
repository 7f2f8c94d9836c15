"""Approvals and the audit trail over REST; the caller is the authenticated identity.

POST /approvals                     submit (gates run now; failing gates answer 422)
GET  /approvals[?status=&model=]    list
GET  /approvals/{id}                show
POST /approvals/{id}/approve        approve (the last required approval promotes)
POST /approvals/{id}/reject         reject with a reason (closes the request)
GET  /audit/verify                  check the chain; names the first broken row
GET  /audit/export[?since=&action=] JSON lines
"""

from __future__ import annotations

import io

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import AuthenticationError, ServiceUnavailableError, ValidationError
from mloop.governance.approvals import ApprovalService
from mloop.governance.audit import audit_log
from mloop.governance.checkpoints import audit_key
from mloop.governance.checkpoints import verify as verify_chain
from mloop.governance.timeparse import parse_since
from mloop.security.access import Role, requires
from mloop.security.auth import caller
from mloop.serving.api_models import errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.handlers import json_response
from mloop.serving.routes.models import refresh_model
from mloop.serving.state import serving_state

router = APIRouter(
    route_class=AuthFirstRoute,
    tags=["governance"],
    responses=errors(400, 401, 404, 409, 413, 422, 503),
)


class SubmitBody(BaseModel):
    # `"version": 2` and `"version": "2"` are the same version (strict=False numbers to text).
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    model: str = Field(..., min_length=1, description="Registered model name.")
    version: str = Field(..., min_length=1, description='Version number (2 or "2").')
    stage: str = Field(..., description="Target stage: Staging, Production or Archived.")
    comment: str | None = None


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(..., min_length=1)


def _service(request: Request) -> ApprovalService:
    service = serving_state(request).approvals
    if service is None:
        raise ServiceUnavailableError("the server is starting: approvals are not ready yet")
    return service


def _actor(request: Request) -> str:
    name = caller(request)
    if name is None:
        raise AuthenticationError(
            "approvals need an authenticated identity, and this server runs with auth off",
            hint="start the server with MLOOP_AUTH=on and send an API key or token",
        )
    return name


@router.post("/approvals", status_code=201, dependencies=[requires(Role.DATA_SCIENTIST)])
async def submit(request: Request, body: SubmitBody) -> Response:
    """Submit a version for promotion; gates run now, from recorded data only."""
    actor = _actor(request)
    service = _service(request)
    made = await run_in_threadpool(
        service.submit,
        body.model,
        body.version,
        body.stage,
        requester=actor,
        comment=body.comment,
    )
    return json_response(made.to_dict(), 201)


@router.get("/approvals", dependencies=[requires(Role.VIEWER)])
async def list_requests(
    request: Request, status: str | None = None, model: str | None = None
) -> Response:
    """Approval requests, oldest first, optionally by status and model."""
    found = await run_in_threadpool(_service(request).list, status, model)
    return json_response([r.to_dict() for r in found])


@router.get("/approvals/{request_id}", dependencies=[requires(Role.VIEWER)])
async def show(request: Request, request_id: str) -> Response:
    """One request with its gates and actions."""
    return json_response((await run_in_threadpool(_service(request).get, request_id)).to_dict())


@router.post("/approvals/{request_id}/approve", dependencies=[requires(Role.VIEWER)])
async def approve(request: Request, request_id: str, body: ApproveBody | None = None) -> Response:
    """Approve as the caller, filling one required role the caller holds (checked here)."""
    actor = _actor(request)
    done = await run_in_threadpool(
        _service(request).approve, request_id, actor=actor, comment=body.comment if body else None
    )
    await _hot_swap(request, done)
    return json_response(done.to_dict())


@router.post("/approvals/{request_id}/reject", dependencies=[requires(Role.VIEWER)])
async def reject(request: Request, request_id: str, body: RejectBody | None = None) -> Response:
    """Reject as the caller (who must hold one of the required roles); closes the request."""
    if body is None:
        raise ValidationError('a rejection needs a reason: send {"reason": "why"}')
    actor = _actor(request)
    done = await run_in_threadpool(
        _service(request).reject, request_id, actor=actor, reason=body.reason
    )
    return json_response(done.to_dict())


@router.get("/audit/verify", dependencies=[requires(Role.COMPLIANCE)])
async def verify(request: Request) -> Response:
    """Verify the audit chain from its newest signed checkpoint (rows pruned by retention):
    `ok`, rows checked, the range they and the checkpoint vouch for, the first broken row."""
    settings = serving_state(request).settings
    log = audit_log(settings)
    report = await run_in_threadpool(verify_chain, log.database, audit_key(settings))
    return json_response(report.to_dict())


@router.get(
    "/audit/export",
    dependencies=[requires(Role.COMPLIANCE)],
    response_class=Response,
    responses={200: {"description": "JSON lines.", "content": {"application/x-ndjson": {}}}},
)
async def export(request: Request, since: str | None = None, action: str | None = None) -> Response:
    """Audit rows as JSON lines (`application/x-ndjson`), from `since` (ISO 8601) on."""

    start = parse_since(since, "query parameter 'since'") if since else None
    log = audit_log(serving_state(request).settings)
    buffer = io.StringIO()
    await run_in_threadpool(log.export, buffer, start, action)
    return Response(buffer.getvalue(), media_type="application/x-ndjson")


async def _hot_swap(request: Request, done) -> None:
    """Hot-swap this server's references of the model when a promotion moved an alias."""

    if done.status == "promoted":
        await refresh_model(request, done.model_name)
