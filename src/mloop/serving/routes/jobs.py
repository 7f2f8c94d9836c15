"""`POST /predict/async`, `GET /jobs`, `GET /jobs/{id}`, `DELETE /jobs/{id}`.

An async prediction is validated against the served model at submit time (a bad row is a 422
at once, not a failed job later) and committed to the platform database before the 202 answer,
so an acknowledged job survives a crash of the server.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import MloopError, ServiceUnavailableError, ValidationError
from mloop.jobs.queue import STATUSES
from mloop.jobs.service import JobService
from mloop.security.access import Role, requires
from mloop.serving.api_models import ERRORS, BatchRequest, ErrorBody, errors, request_body
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_object, read_body
from mloop.serving.handlers import error_response, json_response
from mloop.serving.routes import DATA_PLANE
from mloop.serving.state import serving_state

router = APIRouter(route_class=AuthFirstRoute, tags=["jobs"], responses=errors(400))


class JobAccepted(BaseModel):
    job_id: str
    status: str = Field(description="`queued` at first.")
    status_url: str = Field(description="Where to poll: `/jobs/{job_id}`.")
    rows: int


class JobStatus(BaseModel):
    job_id: str
    kind: str
    status: str = Field(description=f"One of {', '.join(STATUSES)}.")
    progress: float = Field(description="Fraction of rows scored, 0 to 1.")
    rows: int
    model_uri: str | None
    backend: str
    attempts: int
    max_attempts: int
    error: str | None
    worker: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    result: dict[str, Any] | None = Field(
        None, description="When succeeded: the /predict/batch answer's shape."
    )


JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No job with this id."},
    409: {"model": ErrorBody, "description": "The job already finished."},
    503: {"model": ErrorBody, "description": "The jobs database is unavailable."},
}


def job_service(request: Request) -> JobService:
    service = getattr(request.app.state, "mloop_jobs", None)
    if service is None:
        raise ServiceUnavailableError("async jobs are not enabled on this server")
    return service


@router.post(
    "/predict/async",
    status_code=202,
    response_model=JobAccepted,
    responses=ERRORS,
    openapi_extra={**request_body(BatchRequest), **DATA_PLANE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict_async(request: Request) -> Response:
    """Queue rows for scoring: `{"instances": [row, ...]}`, at most MLOOP_JOBS_MAX_ROWS rows."""
    state = serving_state(request)
    try:
        service = job_service(request)
        body = await read_body(request, state.settings.max_body_bytes)
        model = state.runtime.model
        columns = model.schema.names if model is not None else None
        instances = parse_object(body, key="instances", many=True, columns=columns)
        if not isinstance(instances, list):
            raise ValidationError("'instances' must be an array of rows (objects or arrays)")
        if not instances:
            raise ValidationError("'instances' is empty: send at least one row")
        limit = state.settings.jobs_max_rows
        if len(instances) > limit:
            raise ValidationError(
                f"'instances' has {len(instances)} rows, over the limit of {limit}",
                hint="split the rows over several jobs or raise MLOOP_JOBS_MAX_ROWS",
            )
        model = state.runtime.require()
        await run_in_threadpool(model.schema.to_frame, instances)
        job = await run_in_threadpool(service.submit_predict, model, instances)
    except MloopError as exc:
        return error_response(exc)
    url = f"/jobs/{job.id}"
    return json_response(
        {"job_id": job.id, "status": job.status, "status_url": url, "rows": job.rows},
        202,
        headers={"Location": url},
    )


@router.get(
    "/jobs",
    response_model=list[JobStatus],
    responses=JOB_ERRORS,
    dependencies=[requires(Role.PREDICTOR)],
)
async def list_jobs(request: Request, status: str | None = None, limit: int = 50) -> Response:
    """The newest jobs first (without results); `?status=queued` filters, `?limit=` caps."""
    if not 1 <= limit <= 1000:
        return error_response(ValidationError("limit must be between 1 and 1000"))
    try:
        queue = job_service(request).require_queue()
        jobs = await run_in_threadpool(lambda: queue.list(status=status, limit=limit))
    except MloopError as exc:
        return error_response(exc)
    return json_response([job.to_dict(result=False) for job in jobs])


@router.get(
    "/jobs/{job_id}",
    response_model=JobStatus,
    responses=JOB_ERRORS,
    dependencies=[requires(Role.PREDICTOR)],
)
async def get_job(request: Request, job_id: str) -> Response:
    """Status, progress and, once succeeded, the result."""
    try:
        queue = job_service(request).require_queue()
        job = await run_in_threadpool(queue.get, job_id)
    except MloopError as exc:
        return error_response(exc)
    return json_response(job.to_dict())


@router.delete(
    "/jobs/{job_id}",
    response_model=JobStatus,
    responses=JOB_ERRORS,
    dependencies=[requires(Role.PREDICTOR)],
)
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a queued or running job (a running one stops at its next chunk); 409 if done."""
    try:
        queue = job_service(request).require_queue()
        job = await run_in_threadpool(queue.cancel, job_id)
    except MloopError as exc:
        return error_response(exc)
    return json_response(job.to_dict(result=False))
