"""The data-plane routes that declared `FAST_DATA_PLANE`, answered ahead of FastAPI's routing.

Profiling one worker under load showed FastAPI's per-request machinery (middleware layers,
route matching, dependency solving for the role check, query and cookie parsing) taking more
of the event loop than the prediction itself. `ServingApp` is the standard FastAPI app; the
fast path is an optimisation of it built from its own route table (serving.routes): every
POST route with a static path that declared `openapi_extra=FAST_DATA_PLANE` and takes only
the request (today `/predict` and `/predict/batch`) is called directly, doing exactly what
FastAPI does for it:

- the role the route declared (`requires(Role.X)`, read by `security.access.route_role`),
  checked through the app's authenticator (`ServingState.auth`) when one is installed;
- the app's own middleware (`app.user_middleware`), in the same order, except the API-call
  audit: the endpoint records its row itself (`AuditMiddleware.record`: the same row, without
  wrapping `receive` and `send` in two more coroutines per request); the body's sha256 is
  that of the body read (an unread body, e.g. refused before reading, hashes as empty);
- the route's own endpoint;
- exceptions mapped through the app's exception handlers (the nearest class in the MRO, as
  Starlette does; `Exception` is the app's 500 handler, with a request id).

It is off (FastAPI's routing answers) with `fast_path = False`, when FastAPI's own
OpenTelemetry instrumentation is enabled, so traces keep covering predictions, and when the
app has a `root_path`.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mloop.governance.audit_writer import AuditMiddleware
from mloop.security.access import Role, route_role
from mloop.serving.internals import app_routes, cached_body
from mloop.serving.routes import fast_path_allowed

if TYPE_CHECKING:  # serving.state is built from modules that import this one's neighbours
    from mloop.serving.state import ServingState

Answer = Callable[[Request], Awaitable[Response]]
_OFF: dict[str, ASGIApp] = {}  # read-only: "no fast routes"


class ServingApp(FastAPI):
    """The model server's FastAPI app, with a fast path for its fast data-plane routes.

    `mloop` is the app's ServingState (a plain attribute: read per request). `fast_path =
    False` (before the first request) sends every route through FastAPI's routing.
    """

    fast_path: bool = True
    mloop: ServingState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast: dict[str, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            fast = self._fast if self._fast is not None else self._build_fast()
            endpoint = fast.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def fast_routes(self) -> list[tuple[str, Answer, Role | None]]:
        """(path, endpoint, declared role) of every route the fast path may answer."""
        found = []
        for path, route in app_routes(self):
            if not isinstance(route, APIRoute) or "POST" not in route.methods:
                continue
            if not fast_path_allowed(route) or "{" in path:
                continue
            if list(inspect.signature(route.endpoint).parameters) != ["request"]:
                continue
            found.append((path, route.endpoint, route_role(route)))
        return found

    def _build_fast(self) -> dict[str, ASGIApp]:
        """The fast endpoints, each wrapped in the app's middleware (built on first use)."""
        telemetry = getattr(self, "_native_telemetry", None)  # FastAPI's OpenTelemetry hooks
        off = not self.fast_path or self.root_path
        if off or (telemetry is not None and telemetry.enabled()):
            self._fast = _OFF
            return _OFF
        fast: dict[str, ASGIApp] = {}
        for path, answer, role in self.fast_routes():
            audit = None
            wrappers = []
            for middleware in self.user_middleware:
                cls, args, kwargs = middleware.cls, middleware.args, middleware.kwargs
                if cls is AuditMiddleware and audit is None:
                    audit = AuditMiddleware(None, *args, **kwargs)  # type: ignore[arg-type]
                else:
                    wrappers.append((cls, args, kwargs))
            app: ASGIApp = _Endpoint(self, answer, role, audit)
            for cls, args, kwargs in reversed(wrappers):
                app = cls(app, *args, **kwargs)
            fast[path] = app
        self._fast = fast
        return fast


class _Endpoint:
    """One prediction route as a plain ASGI app: role check, answer, exception handlers, and
    the API-call audit row when the app audits calls."""

    def __init__(
        self, app: ServingApp, answer: Answer, role: Role | None, audit: AuditMiddleware | None
    ) -> None:
        self.app = app
        self.answer = answer
        self.role = role
        self.audit = audit
        self.state = app.mloop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, send)
        status = 500
        try:
            try:
                authenticator = self.state.auth
                if authenticator is not None and self.role is not None:
                    await authenticator.authorize(request, self.role)
                response = await self.answer(request)
            except Exception as exc:
                response = await self._handle(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            if self.audit is not None:
                body = cached_body(request) or b""
                self.audit.record(scope, status, started, hashlib.sha256(body).hexdigest())

    async def _handle(self, request: Request, exc: Exception) -> Response:
        """The response of the app's handler for `exc` (the nearest class in its MRO)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                return result  # type: ignore[return-value]
        raise exc
