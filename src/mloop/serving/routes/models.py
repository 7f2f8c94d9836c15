"""Registry changes over REST: promote and roll back, under the same policy as the CLI.

A promotion to a stage whose policy requires approval, without an approved request, is 409
here exactly as in `mloop models promote`. When the change moves an alias this server
follows, the server hot-swaps before answering (other servers pick it up by poll).

`POST /models/refresh` re-reads every followed alias at once: for operators, scripts, and
MLflow's own registry webhook (signed deliveries, see `serving.mlflow_webhook`).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import NotFoundError, ServiceUnavailableError
from mloop.governance.approvals import known_stage
from mloop.registry.service import Registry
from mloop.security.access import Role, requires
from mloop.security.auth import caller
from mloop.serving.api_models import errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.handlers import json_response
from mloop.serving.mlflow_webhook import SignedOrRole, body_of, model_of
from mloop.serving.runtime import SwapOutcome
from mloop.serving.state import serving_state

router = APIRouter(
    route_class=AuthFirstRoute,
    tags=["registry"],
    responses=errors(400, 401, 404, 409, 413, 422, 503),
)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(..., description="Target stage: Staging, Production or Archived.")
    approval: int | None = Field(None, description="Approved request authorising the move.")
    reason: str | None = None


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = "Production"
    reason: str | None = None


def _registry(request: Request) -> Registry:
    """The governed registry of this server's approval service (built once, at startup)."""
    approvals = serving_state(request).approvals
    if approvals is None:
        raise ServiceUnavailableError("the server is still starting: try again in a moment")
    return approvals.registry


@router.post("/models/{name}/versions/{version}/promote", dependencies=[requires(Role.ML_LEAD)])
async def promote(request: Request, name: str, version: str, body: PromoteBody) -> Response:
    """Move a version to a stage (409 when the stage's policy needs an approval not given)."""

    stage = known_stage(body.stage)
    moved = await run_in_threadpool(
        _registry(request).promote,
        name,
        version,
        stage,
        actor=caller(request) or "anonymous",
        reason=body.reason,
        approval=body.approval,
    )
    await refresh_model(request, name)
    return json_response(moved.to_dict())


@router.post("/models/{name}/rollback", dependencies=[requires(Role.ML_LEAD)])
async def rollback(request: Request, name: str, body: RollbackBody | None = None) -> Response:
    """Give the stage back to the version its holder replaced."""

    body = body or RollbackBody()
    stage = known_stage(body.stage)
    back = await run_in_threadpool(
        _registry(request).rollback,
        name,
        stage=stage,
        actor=caller(request) or "anonymous",
        reason=body.reason,
    )
    await refresh_model(request, name)
    return json_response(back.to_dict())


@router.post("/models/refresh", dependencies=[Depends(SignedOrRole(Role.ML_LEAD))])
async def refresh(request: Request) -> Response:
    """Re-read every followed alias now; answer once the swaps are done.

    Body: empty (every reference), `{"model": NAME}`, or an MLflow registry webhook delivery
    (`model_version_alias.created` / `.deleted`), which refreshes that model's references.
    """
    body = await body_of(request)
    name = model_of(body)
    pool = serving_state(request).pool
    if name is not None and _by_name(body):  # a webhook delivery may be about any model
        served = sorted({r.model_name for r in pool.runtimes() if r.model_name}) if pool else []
        if name not in served:
            raise NotFoundError(
                f"this server serves no model {name!r}",
                hint=f"models served here: {', '.join(served) or 'none'}",
            )
    outcomes = await run_in_threadpool(pool.refresh, name) if pool is not None else []
    return json_response({"refreshed": [outcome.to_dict() for outcome in outcomes]})


def _by_name(body: bytes) -> bool:
    """The body names the model itself (`{"model": NAME}`), not an MLflow delivery."""
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and "model" in value


async def refresh_model(request: Request, name: str) -> list[SwapOutcome]:
    """Refresh this server's references of model `name` (after a promotion or rollback)."""
    pool = serving_state(request).pool
    if pool is None or not any(r.follows and r.model_name == name for r in pool.runtimes()):
        return []
    return await run_in_threadpool(pool.refresh, name)
