"""Console Deployments: every deployment's policy and traffic; one deployment's live numbers,
A/B report and history; promote, roll back, shift and blue-green switch (ml_lead).

Each action calls `DeploymentService` as the REST route does (same permission Action, the
console user as actor, so the audit gets the same `deployment.<action>` row), refreshes this
server's routing table at once, and redirects back with a flash.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.deploy.service import DeploymentService
from mloop.deploy.spec import Policy
from mloop.errors import ConflictError, ServiceUnavailableError
from mloop.security import permissions as p
from mloop.serving.console import views
from mloop.serving.console.variant_metrics import LiveWindow, live_rows
from mloop.serving.console.web import (
    ConsoleUser,
    acting,
    current_user,
    flash,
    form_data,
    render,
    see_other,
    state,
)

router = APIRouter()


def _service(request: Request) -> DeploymentService:
    service = state(request).deployments
    if service is None:
        raise ServiceUnavailableError("the server is starting: deployments are not ready yet")
    return service


def live_window(app: Any) -> LiveWindow:
    """This app's recent readings of the variants' totals (for the numbers over a window)."""
    if getattr(app.state, "mloop_console_live", None) is None:
        app.state.mloop_console_live = LiveWindow()
    return app.state.mloop_console_live


@router.get("/ui/deployments")
async def deployment_list(request: Request, user: ConsoleUser = Depends(current_user)):
    """Every deployment with its policy, variants and their traffic share."""
    rows = await run_in_threadpool(views.deployment_list, _service(request))
    return render(request, "deployments.html", {"deployments": rows})


@router.get("/ui/deployments/{name}")
async def deployment_page(request: Request, name: str, user: ConsoleUser = Depends(current_user)):
    """Variants with live numbers, the A/B report, the latest revisions and the actions."""
    serving = state(request)
    detail = await run_in_threadpool(
        views.deployment_detail, _service(request), name, serving.deploy_counts
    )
    names = [v["variant"] for v in detail["variants"]]
    live = await run_in_threadpool(
        live_rows, serving.metrics, live_window(request.app), name, names
    )
    context = {
        "d": detail,
        "live": live,
        "live_window": _common_window(live),
        "window_minutes": f"{live_window(request.app).window / 60:g}",
        "live_chart": _latency_figure(live),
        "may_act": user.holds(p.DEPLOYMENT_SHIFT.role),
        "role_needed": p.DEPLOYMENT_SHIFT.role.value,
    }
    return render(request, "deployments_detail.html", context)


def _common_window(live: list[dict[str, Any]]) -> str | None:
    """The window every variant's numbers cover ('last 5 min', 'since start'), if one."""
    windows = {row["window"] for row in live}
    return windows.pop() if len(windows) == 1 else None


def _latency_figure(live: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A bar chart of p50/p99 latency per variant (None before any request)."""
    if not any(row["p50_ms"] is not None for row in live):
        return None
    variants = [row["variant"] for row in live]
    return {
        "data": [
            {"type": "bar", "name": q, "x": variants, "y": [row[f"{q}_ms"] for row in live]}
            for q in ("p50", "p99")
        ],
        "layout": {"barmode": "group", "yaxis": {"title": {"text": "ms"}}, "height": 280},
    }


async def _changed(request: Request, name: str, message: str) -> Response:
    traffic = state(request).traffic
    if traffic is not None:  # route the change at once here (others see it on their poll)
        await run_in_threadpool(traffic.refresh)
    flash(request, message)
    return see_other(f"/ui/deployments/{quote(name, safe='')}")


@router.post("/ui/deployments/{name}/promote")
async def promote(
    request: Request, name: str, user: ConsoleUser = Depends(acting(p.DEPLOYMENT_PROMOTE))
):
    """The candidate (or the posted `variant`) becomes the primary."""
    variant = (await form_data(request)).get("variant") or None
    written = await run_in_threadpool(_service(request).promote, name, user.name, variant)
    return await _changed(request, name, f"promoted in {name}: now revision {written.revision}")


@router.post("/ui/deployments/{name}/rollback")
async def rollback(
    request: Request, name: str, user: ConsoleUser = Depends(acting(p.DEPLOYMENT_ROLLBACK))
):
    """Restore the previous revision's spec as a new revision."""
    written = await run_in_threadpool(_service(request).rollback, name, user.name)
    return await _changed(request, name, f"rolled back {name}: now revision {written.revision}")


@router.post("/ui/deployments/{name}/shift")
async def shift(
    request: Request, name: str, user: ConsoleUser = Depends(acting(p.DEPLOYMENT_SHIFT))
):
    """Give the posted variant `to` the posted `share` percent of the traffic."""
    form = await form_data(request)
    share = views.parse_share(form.get("share", ""))
    variant = form.get("to", "")
    written = await run_in_threadpool(_service(request).shift, name, variant, share, user.name)
    return await _changed(
        request, name, f"{variant} now gets {share:g}% of {name} (revision {written.revision})"
    )


@router.post("/ui/deployments/{name}/switch")
async def switch(
    request: Request, name: str, user: ConsoleUser = Depends(acting(p.DEPLOYMENT_SHIFT))
):
    """Blue-green: all traffic to the idle slot (the service's shift to 100%)."""
    service = _service(request)
    _, spec = await run_in_threadpool(service.get, name)
    if spec.policy is not Policy.BLUE_GREEN:
        raise ConflictError(f"deployment '{name}' is {spec.policy.value}, not blue-green")
    idle = spec.candidate or ""
    written = await run_in_threadpool(service.shift, name, idle, 100.0, user.name)
    return await _changed(request, name, f"{name} switched to {idle} (revision {written.revision})")
