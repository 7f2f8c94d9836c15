"""Console Jobs: async and batch jobs with status and progress; a job's page; cancel.

Seeing jobs needs the role `GET /jobs` and `GET /jobs/{id}` need (JOB_READ, JOB_SHOW:
predictor): an identity without it gets the API's refusal as a 403 page, and the nav has no
Jobs entry for it. Cancelling needs the same permission as `DELETE /jobs/{id}` (JOB_CANCEL)
and goes through the same `JobQueue.cancel` of the server's JobService (a running job stops
at its next chunk).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from mloop.errors import ServiceUnavailableError
from mloop.jobs.queue import STATUSES, JobQueue
from mloop.security import permissions as p
from mloop.security.permissions import permit
from mloop.serving.console import views
from mloop.serving.console.web import (
    ConsoleUser,
    acting,
    current_user,
    flash,
    render,
    see_other,
    state,
)

router = APIRouter()


def _queue(request: Request) -> JobQueue:
    """The server's job queue (ServiceUnavailableError when jobs are off or not started)."""
    service = state(request).jobs
    if service is None:
        service = getattr(request.app.state, "mloop_jobs", None)
    if service is None:
        raise ServiceUnavailableError("async jobs are not enabled on this server")
    return service.require_queue()


def _may_read(user: ConsoleUser, action: p.Action, api_path: str) -> None:
    """Refuse as the REST route refuses (same role, same message naming the API call)."""
    permit(user.identity, action.role, f"GET {api_path}")


@router.get("/ui/jobs")
async def job_list(
    request: Request,
    status: str | None = Query(None, max_length=20),
    user: ConsoleUser = Depends(current_user),
):
    """The newest jobs, optionally of one status, and the count per status."""
    _may_read(user, p.JOB_READ, "/jobs")
    data = await run_in_threadpool(views.job_list, _queue(request), status)
    context = {**data, "statuses": STATUSES, "status": status or ""}
    return render(request, "jobs.html", context)


@router.get("/ui/jobs/{job_id}")
async def job_page(request: Request, job_id: str, user: ConsoleUser = Depends(current_user)):
    """One job: status, progress, attempts, error, result summary; cancel if not finished."""
    _may_read(user, p.JOB_SHOW, f"/jobs/{job_id}")
    job = await run_in_threadpool(views.job_detail, _queue(request), job_id)
    context = {
        "job": job,
        "may_cancel": user.holds(p.JOB_CANCEL.role),
        "role_needed": p.JOB_CANCEL.role.value,
    }
    return render(request, "jobs_detail.html", context)


@router.post("/ui/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str, user: ConsoleUser = Depends(acting(p.JOB_CANCEL))):
    """Cancel a queued or running job (409 page when it already finished)."""
    job = await run_in_threadpool(_queue(request).cancel, job_id)
    flash(request, f"job {job.id} cancelled")
    return see_other(f"/ui/jobs/{quote(job_id, safe='')}")
