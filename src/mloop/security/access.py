"""Every HTTP route declares the role it needs: `dependencies=[requires(Role.PREDICTOR)]`.

The check itself is done by the authenticator installed on the app (`app.state.mloop_auth`);
with none installed (auth off) every request passes. A test walks the route table and fails for
any route without a declared role, so no endpoint is left open by accident. A check may run
before FastAPI reads the body (serving.auth_first); it is then not run again for the request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.requests import Request

try:  # FastAPI >= 0.120 wraps included routers; this walks them with their prefixes.
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: included routes are flat in app.routes
    iter_route_contexts = None


class Role(StrEnum):
    """Roles an identity can hold; PUBLIC marks routes that stay open even with auth on."""

    PUBLIC = "public"
    VIEWER = "viewer"
    PREDICTOR = "predictor"
    DATA_SCIENTIST = "data_scientist"
    ML_LEAD = "ml_lead"
    SECURITY = "security"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


CHECKED_KEY = "mloop.role_checked"  # scope key: (role, identity) of this request's check


async def authorize_once(request: Request, role: Role) -> Any:
    """The caller's identity if it may use a route needing `role` (raises 401/403/429 if not);
    checked once per request: a second call for the same role answers the first's identity."""
    checked = request.scope.get(CHECKED_KEY)
    if checked is not None and checked[0] is role:
        return checked[1]
    authenticator = getattr(request.app.state, "mloop_auth", None)
    identity = None
    if authenticator is not None:
        # PUBLIC is checked too: the authenticator may close /metrics (MLOOP_METRICS_PUBLIC).
        identity = await authenticator.authorize(request, role)
    request.scope[CHECKED_KEY] = (role, identity)
    return identity


class RoleCheck:
    """The dependency behind `requires(role)`; `role` is read by the route-table test."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, request: Request) -> Any:
        return await authorize_once(request, self.role)


def requires(role: Role) -> Any:
    """A FastAPI dependency declaring (and, with auth on, enforcing) the role a route needs."""
    return Depends(RoleCheck(role))


def route_role(route: Any) -> Role | None:
    """The role an APIRoute declared through `requires`, or None when it declared none."""
    dependant = getattr(route, "dependant", None)
    for dependency in dependant.dependencies if dependant is not None else []:
        if isinstance(dependency.call, RoleCheck):
            return dependency.call.role
    return None


def api_routes(app: Any) -> list[tuple[str, frozenset[str], Role | None]]:
    """(path, methods, declared role) for every API route of `app`, included routers too."""
    if iter_route_contexts is not None:
        pairs = [(ctx.path, ctx.route) for ctx in iter_route_contexts(app.routes)]
    else:
        pairs = [(getattr(route, "path", ""), route) for route in app.routes]
    return [
        (path, frozenset(route.methods), route_role(route))
        for path, route in pairs
        if isinstance(route, APIRoute)
    ]
