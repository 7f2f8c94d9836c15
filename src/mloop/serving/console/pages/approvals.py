"""Approvals pages: requests with their gates, and approve/reject forms for the logged-in user.

Approving and rejecting go through the server's ApprovalService as the REST routes do (same
audit rows, same rules: the service refuses self-approval and identities without a required
role); the page also explains up front why the user may not approve. The list reads one
page of pending requests (oldest first) and one of closed ones (newest first), each with a
link to the next, so it stays fast however many requests the history holds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import PermissionDeniedError, ServiceUnavailableError
from mloop.governance.approvals import PENDING, ApprovalRequest, ApprovalService
from mloop.security.permissions import APPROVAL_APPROVE, APPROVAL_REJECT
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
from mloop.serving.routes.models import refresh_model

router = APIRouter()
PAGE = 25  # requests per page, pending and closed each


def service(request: Request) -> ApprovalService:
    found = state(request).approvals
    if found is None:
        raise ServiceUnavailableError("the server is starting: approvals are not ready yet")
    return found


def why_not(user: ConsoleUser, item: ApprovalRequest) -> str | None:
    """Why `user` may not approve `item` (None: it may), in the service's own terms."""
    if item.status != PENDING:
        return f"the request is closed ({item.status})"
    if user.local:
        return "approvals need a logged-in identity: this server runs with auth off; log in"
    if user.name == item.requester:
        return (
            "you submitted this request: an identity may not approve its own request "
            "(separation of duties); approvals must come from other identities"
        )
    if any(a["actor"] == user.name for a in item.actions):
        return "you already acted on this request: each identity acts once"
    if not any(user.holds(role) for role in item.required_roles):
        return (
            f"approving needs one of the roles {', '.join(item.required_roles)}; "
            f"you hold {', '.join(sorted(user.roles))}"
        )
    if not any(user.holds(role) for role in item.missing_roles):
        return (
            f"the role you hold is already approved; it still needs {', '.join(item.missing_roles)}"
        )
    return None


def can_reject(user: ConsoleUser, item: ApprovalRequest) -> bool:
    return (
        item.status == PENDING
        and not user.local
        and any(user.holds(role) for role in item.required_roles)
    )


def overview(
    approvals: ApprovalService, pending_from: int = 0, closed_from: int = 0, size: int = PAGE
) -> dict[str, Any]:
    """A page of pending requests (oldest first) and one of closed ones (newest first), with
    their totals and where the next page of each starts (None: no more)."""
    pending, pending_total = approvals.page(pending=True, offset=pending_from, limit=size)
    closed, closed_total = approvals.page(pending=False, offset=closed_from, limit=size)

    def after(start: int, total: int) -> int | None:
        return start + size if start + size < total else None

    return {
        "pending": pending,
        "pending_total": pending_total,
        "pending_from": pending_from,
        "pending_next": after(pending_from, pending_total),
        "closed": closed,
        "closed_total": closed_total,
        "closed_from": closed_from,
        "closed_next": after(closed_from, closed_total),
    }


def _no_local(user: ConsoleUser) -> None:
    if user.local:
        raise PermissionDeniedError(
            "approvals need a logged-in identity, and this server runs with auth off",
            hint="log in at /ui/login as an identity holding a required role",
        )


@router.get("/ui/approvals")
async def approvals_page(
    request: Request,
    pending: int = Query(0, ge=0, le=10**9, description="offset in the pending requests"),
    closed: int = Query(0, ge=0, le=10**9, description="offset in the closed requests"),
    user: ConsoleUser = Depends(current_user),
) -> Response:
    """Pending requests first, then the closed ones, a page of each."""
    view = await run_in_threadpool(overview, service(request), pending, closed)
    return render(request, "approvals.html", view)


@router.get("/ui/approvals/{request_id}")
async def approval_page(
    request: Request, request_id: str, user: ConsoleUser = Depends(current_user)
) -> Response:
    item = await run_in_threadpool(service(request).get, request_id)
    context = {"r": item, "why_not": why_not(user, item), "can_reject": can_reject(user, item)}
    return render(request, "approvals_detail.html", context)


@router.post("/ui/approvals/{request_id}/approve")
async def approve(
    request: Request, request_id: str, user: ConsoleUser = Depends(acting(APPROVAL_APPROVE))
) -> Response:
    """Approve as the logged-in identity; the last required approval promotes."""
    _no_local(user)
    comment = (await form_data(request)).get("comment", "").strip() or None
    done = await run_in_threadpool(
        service(request).approve, request_id, actor=user.name, comment=comment
    )
    if done.status == "promoted":
        await refresh_model(request, done.model_name)  # as POST /approvals/{id}/approve
    flash(request, f"approved request {done.id} ({done.model_name}/{done.version}): {done.status}")
    return see_other(f"/ui/approvals/{done.id}")


@router.post("/ui/approvals/{request_id}/reject")
async def reject(
    request: Request, request_id: str, user: ConsoleUser = Depends(acting(APPROVAL_REJECT))
) -> Response:
    """Reject with a reason as the logged-in identity (closes the request)."""
    _no_local(user)
    reason = (await form_data(request)).get("reason", "")
    done = await run_in_threadpool(
        service(request).reject, request_id, actor=user.name, reason=reason
    )
    flash(request, f"rejected request {done.id} ({done.model_name}/{done.version})")
    return see_other(f"/ui/approvals/{done.id}")
