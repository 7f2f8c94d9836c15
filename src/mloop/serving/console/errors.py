"""HTML error pages for `/ui` paths: the API's JSON error handlers stay for every other path.

Each handler `install_errors` replaces delegates to the one it wraps unless the request is a
console page's: then a login redirect, or `error.html` with the error's status and message
(a refused role is a 403 page naming the role; bad input a 4xx page; never a traceback).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mloop.errors import MloopError
from mloop.serving.console.headers import is_console
from mloop.serving.console.web import LoginRequired, error_page, login_url


def _page_for(exc: Exception, request: Request) -> Response:
    if isinstance(exc, LoginRequired):
        return RedirectResponse(login_url(exc.next_url), status_code=303)
    if isinstance(exc, MloopError):
        page = error_page(request, exc.http_status, exc.message, exc.hint)
        page.headers.update(getattr(exc, "headers", None) or {})  # Retry-After on a 429
        return page
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
            for error in exc.errors()
        )
        return error_page(request, 422, f"bad input: {problems}")
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, f"no page {request.url.path}")
    if exc.status_code == 405:
        return error_page(request, 405, f"{request.method} is not allowed on {request.url.path}")
    return error_page(request, exc.status_code, str(exc.detail))


def _wrap(original: Any) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        if is_console(request.url.path) and request.url.path != "/":
            return _page_for(exc, request)
        if original is None:
            raise exc
        return await original(request, exc)

    return handler


def install_errors(app: FastAPI) -> None:
    """Wrap the app's handlers of mloop, HTTP and validation errors for console paths."""
    kinds: list[type[Exception]] = [MloopError, StarletteHTTPException, RequestValidationError]
    kinds += [
        kind
        for kind in list(app.exception_handlers)
        if isinstance(kind, type) and issubclass(kind, MloopError) and kind is not MloopError
    ]
    for kind in kinds:
        app.add_exception_handler(kind, _wrap(app.exception_handlers.get(kind)))
    app.add_exception_handler(LoginRequired, _wrap(None))
