"""HTTP routes of the model server, one module per concern.

Each route declares, in its one `@router.<method>(...)` declaration, its role
(`dependencies=[requires(Role.X)]`, security.access) and its plane: data-plane routes (those
answering predictions) pass `openapi_extra=DATA_PLANE`, or `FAST_DATA_PLANE` when the
serving fast path (serving.fastpath) may answer them ahead of FastAPI's routing. Everything
else is control plane. The OpenAPI document shows the plane as `x-mloop-plane`.
"""

from __future__ import annotations

from typing import Any

PLANE_KEY = "x-mloop-plane"
FAST_KEY = "x-mloop-fast-path"
DATA_PLANE: dict[str, Any] = {PLANE_KEY: "data"}
FAST_DATA_PLANE: dict[str, Any] = {PLANE_KEY: "data", FAST_KEY: True}


def plane(route: Any) -> str:
    """The plane `route` declared: "data" or "control"."""
    extra = getattr(route, "openapi_extra", None) or {}
    return "data" if extra.get(PLANE_KEY) == "data" else "control"


def fast_path_allowed(route: Any) -> bool:
    """True when `route` declared `FAST_DATA_PLANE`."""
    extra = getattr(route, "openapi_extra", None) or {}
    return plane(route) == "data" and extra.get(FAST_KEY) is True
