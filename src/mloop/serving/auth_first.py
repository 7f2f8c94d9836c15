"""The route class of every API router: the role is checked before FastAPI reads the body.

FastAPI reads a route's whole body and decodes its JSON (for a pydantic body parameter)
before it solves the route's dependencies, the role check of `requires(Role.X)` among them. So
an anonymous client could make the server read a body of any size and parse it, and a
malformed one was answered 422 instead of 401. `AuthFirstRoute` runs the declared check first
(401, 403 or 429 before a byte of the body is read), then reads the body within
`MLOOP_MAX_BODY_BYTES` (413 beyond it: FastAPI itself reads without a limit), then hands the
request to FastAPI's handler; the role dependency finds the check done
(`security.access.authorize_once`) and does not count the request twice against a rate limit.

Routes without a body parameter read their body themselves, after the role check, and are left
as FastAPI builds them. Use it as `APIRouter(route_class=AuthFirstRoute)`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from mloop.security.access import RoleCheck
from mloop.serving.body import read_body
from mloop.serving.internals import AVAILABLE
from mloop.serving.state import serving_state

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def role_check(route: APIRoute) -> RoleCheck | None:
    """The role check the route declared (`requires` or a subclass of RoleCheck), or None."""
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, RoleCheck):
            return dependency.call
    return None


class AuthFirstRoute(APIRoute):
    """An APIRoute whose declared role is checked, and body size bounded, before the body is
    read and parsed."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        check = role_check(self)
        if self.body_field is None or check is None:
            return handler

        async def checked_first(request: Request) -> Response:
            await check(request)  # raises 401/403/429: the handler's exception handlers answer
            if AVAILABLE.request_body_cache:  # else FastAPI could not find the body read here
                await read_body(request, serving_state(request).settings.max_body_bytes)
            return await handler(request)

        return checked_first
