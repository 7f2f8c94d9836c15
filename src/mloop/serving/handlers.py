"""Exception handlers: every error leaves the server as JSON `{"error", "detail", "hint"?}`.

MloopError answers with its own http_status; Starlette's 404/405 and FastAPI's request
validation become the same shape; anything else is a 500 with a short message, logged with
its traceback and never sent to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import MloopError

log = logging.getLogger("mloop.serving")

_HTTP_NAMES = {
    400: "BadRequest",
    404: "NotFoundError",
    405: "MethodNotAllowed",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaType",
}


class JSONBytesResponse(Response):
    """JSON already serialized, with its headers built directly (no header parsing).

    Starlette's `Response.__init__` re-encodes and scans every header; on the prediction path
    that was a measurable share of the event loop's time per request.
    """

    media_type = "application/json"

    def __init__(
        self, content: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = content
        raw = [
            (b"content-length", b"%d" % len(content)),
            (b"content-type", b"application/json"),
        ]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw


def json_response(
    body: object, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialized with orjson (numpy scalars and arrays allowed)."""
    return JSONBytesResponse(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code, headers
    )


def error_response(exc: MloopError) -> Response:
    return json_response(exc.to_dict(), exc.http_status)


def internal_error_response(detail: str = "internal server error") -> Response:
    return json_response({"error": "InternalError", "detail": detail}, 500)


async def _mloop_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MloopError)
    if exc.http_status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
    return json_response({"error": name, "detail": detail}, exc.status_code, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
        for error in exc.errors()
    )
    return json_response({"error": "ValidationError", "detail": problems}, 422)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response()


def install_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on `app`."""
    app.add_exception_handler(MloopError, _mloop_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
