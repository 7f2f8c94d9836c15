"""`POST /predict` and `POST /predict/batch` answered ahead of FastAPI's routing.

Profiling one worker under load showed FastAPI's per-request machinery (middleware layers,
route matching, dependency solving for the role check, query and cookie parsing) taking more
of the event loop than the prediction itself. `ServingApp` answers the two prediction routes
directly, doing exactly what the FastAPI routes do:

- the role check (`Role.PREDICTOR`) through `app.state.mloop_auth` when one is installed
  (authentication and rate limits), with the same error answers;
- the app's own middleware (`app.user_middleware`), in the same order, except the API-call
  audit: the endpoint records its row itself (`AuditMiddleware.record`: the same row, without
  wrapping `receive` and `send` in two more coroutines per request); the body's sha256 is
  that of the body read (an unread body, e.g. refused before reading, hashes as empty);
- the same answer function (`routes.predict.answer_one` / `answer_batch`): body-size limit,
  orjson parse, validation, deadline, cache, batcher, `state.publish`, metrics;
- exceptions mapped through the app's exception handlers, like Starlette does.

The FastAPI declarations stay (OpenAPI, the route-role test, and the path taken whenever the
fast path is off). It is off when FastAPI's own OpenTelemetry instrumentation is enabled, so
traces keep covering predictions, and when the app has a `root_path`.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mloop.governance.audit_writer import AuditMiddleware
from mloop.security.access import Role

Answer = Callable[[Request], Awaitable[Response]]
_OFF: dict[str, ASGIApp] = {}


class ServingApp(FastAPI):
    """The model server's FastAPI app, with a fast path for the prediction routes.

    `fast_path = False` (before the first request) sends them through FastAPI's routing.
    """

    fast_path: bool = True

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

    def _build_fast(self) -> dict[str, ASGIApp]:
        """The fast endpoints, each wrapped in the app's middleware (built on first use)."""
        from mloop.serving.routes.predict import answer_batch, answer_one

        telemetry = getattr(self, "_native_telemetry", None)  # FastAPI's OpenTelemetry hooks
        off = not self.fast_path or self.root_path
        if off or (telemetry is not None and telemetry.enabled()):
            self._fast = _OFF
            return _OFF
        fast: dict[str, ASGIApp] = {}
        for path, answer in (("/predict", answer_one), ("/predict/batch", answer_batch)):
            audit = None
            wrappers = []
            for cls, args, kwargs in self.user_middleware:
                if cls is AuditMiddleware and audit is None:
                    audit = AuditMiddleware(None, *args, **kwargs)  # type: ignore[arg-type]
                else:
                    wrappers.append((cls, args, kwargs))
            app: ASGIApp = _Endpoint(self, answer, audit)
            for cls, args, kwargs in reversed(wrappers):
                app = cls(app, *args, **kwargs)
            fast[path] = app
        self._fast = fast
        return fast


class _Endpoint:
    """One prediction route as a plain ASGI app: role check, answer, exception handlers, and
    the API-call audit row when the app audits calls."""

    def __init__(self, app: FastAPI, answer: Answer, audit: AuditMiddleware | None) -> None:
        self.app = app
        self.answer = answer
        self.audit = audit
        self.state: dict[str, Any] = app.state._state  # plain dict: no AttributeError cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive, send)
        status = 500
        try:
            try:
                authenticator = self.state.get("mloop_auth")
                if authenticator is not None:
                    await authenticator.authorize(request, Role.PREDICTOR)
                response = await self.answer(request)
            except Exception as exc:
                response = await self._handle(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            if self.audit is not None:
                body = getattr(request, "_body", b"")
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
