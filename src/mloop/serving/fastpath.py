"""`POST /predict` and `POST /predict/batch` answered ahead of FastAPI's routing.

Profiling one worker under load showed FastAPI's per-request machinery (middleware layers,
route matching, dependency solving for the role check, query and cookie parsing) taking more
of the event loop than the prediction itself. `ServingApp` answers the two prediction routes
directly, doing exactly what the FastAPI routes do:

- the role check (`Role.PREDICTOR`) through `app.state.mloop_auth` when one is installed
  (authentication and rate limits), with the same error answers;
- the app's own middleware (`app.user_middleware`, e.g. the API-call audit), in the same order;
- the same answer function (`routes.predict.answer_one` / `answer_batch`): body-size limit,
  orjson parse, validation, deadline, cache, batcher, `state.publish`, metrics;
- exceptions mapped through the app's exception handlers, like Starlette does.

The FastAPI declarations stay (OpenAPI, the route-role test, and the path taken whenever the
fast path is off). It is off when FastAPI's own OpenTelemetry instrumentation is enabled, so
traces keep covering predictions, and when the app has a `root_path`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

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
            app: ASGIApp = _Endpoint(self, answer)
            for cls, args, kwargs in reversed(self.user_middleware):
                app = cls(app, *args, **kwargs)
            fast[path] = app
        self._fast = fast
        return fast


class _Endpoint:
    """One prediction route as a plain ASGI app: role check, answer, exception handlers."""

    def __init__(self, app: FastAPI, answer: Answer) -> None:
        self.app = app
        self.answer = answer
        self.state: dict[str, Any] = app.state._state  # plain dict: no AttributeError cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            authenticator = self.state.get("mloop_auth")
            if authenticator is not None:
                await authenticator.authorize(request, Role.PREDICTOR)
            response = await self.answer(request)
        except Exception as exc:
            response = await self._handle(request, exc)
        await response(scope, receive, send)

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
