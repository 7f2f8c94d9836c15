"""Registry changes over REST: promote and roll back, under the same policy as the CLI.

A promotion to a stage whose policy requires approval, without an approved request, is 409
here exactly as in `mloop models promote`. When the change moves the alias this server
serves, the server reloads (hot swap) before answering.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.security.access import Role, requires
from mloop.security.auth import caller
from mloop.serving.handlers import json_response
from mloop.serving.state import serving_state

router = APIRouter(tags=["registry"])


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(..., description="Target stage: Staging, Production or Archived.")
    approval: int | None = Field(None, description="Approved request authorising the move.")
    reason: str | None = None


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = "Production"
    reason: str | None = None


def _registry(request: Request):
    from mloop.registry.service import Registry

    return Registry(serving_state(request).settings)


@router.post("/models/{name}/versions/{version}/promote", dependencies=[requires(Role.ML_LEAD)])
async def promote(request: Request, name: str, version: str, body: PromoteBody) -> Response:
    """Move a version to a stage (409 when the stage's policy needs an approval not given)."""
    from mloop.governance.approvals import known_stage

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
    await reload_if_serving(request, name, stage.value)
    return json_response(moved.to_dict())


@router.post("/models/{name}/rollback", dependencies=[requires(Role.ML_LEAD)])
async def rollback(request: Request, name: str, body: RollbackBody | None = None) -> Response:
    """Give the stage back to the version its holder replaced."""
    from mloop.governance.approvals import known_stage

    body = body or RollbackBody()
    stage = known_stage(body.stage)
    back = await run_in_threadpool(
        _registry(request).rollback,
        name,
        stage=stage,
        actor=caller(request) or "anonymous",
        reason=body.reason,
    )
    await reload_if_serving(request, name, stage.value)
    return json_response(back.to_dict())


async def reload_if_serving(request: Request, name: str, stage: str) -> bool:
    """Reload this server's model when it serves `name` at the alias of `stage`."""
    from mloop.registry.stages import parse_stage

    runtime = serving_state(request).runtime
    model = runtime.model
    alias = parse_stage(stage).alias
    if model is None or model.name != name or alias is None or model.alias != alias:
        return False
    return await run_in_threadpool(runtime.load_once)
