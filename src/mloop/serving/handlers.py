"""Exception handlers: every error leaves the server as JSON `{"error", "detail", "hint"?}`.

MloopError answers with its own http_status; Starlette's 404/405 and FastAPI's request
validation become the same shape; anything else is a 500 with a short message, logged with
its traceback and never sent to the client. Every error answer carries a `request_id` (the
client's `X-Request-ID` when it sent a usable one, otherwise a new one; `mloop.logs`) that the
response's `X-Request-ID`, the server's log lines and the audit row name too, so a client's
report finds the traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from mloop import logs
from mloop.errors import MloopError
from mloop.security.access import api_routes

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


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(request: Request | None = None) -> str:
    """The id an error answer and its log lines share: the one `logs.RequestIdMiddleware`
    bound, else the client's `x-request-id` if usable, else a new one."""
    bound = logs.request_id()
    if bound is not None:
        return bound
    if request is not None:
        for key, value in request.scope.get("headers", ()):
            if key == b"x-request-id":
                text = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(text):
                    return text
                break
    return logs.new_request_id()


def error_response(exc: MloopError, request: Request | None = None) -> Response:
    """`exc` as its JSON answer with the request id; a 5xx one is logged with it."""
    body = exc.to_dict()
    body["request_id"] = rid = request_id(request)
    if exc.http_status >= 500:
        log.error("answered %d (request_id %s): %s", exc.http_status, rid, exc.message)
    return json_response(body, exc.http_status)


def unexpected_error(request: Request, exc: BaseException) -> Response:
    """Log `exc` with its traceback and a request id, and answer 500 with that id."""
    rid = request_id(request)
    log.error(
        "unhandled error on %s %s (request_id %s)",
        request.method,
        request.url.path,
        rid,
        exc_info=exc,
    )
    body = {"error": "InternalError", "detail": "internal server error", "request_id": rid}
    return json_response(body, 500)


async def _mloop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MloopError)
    return error_response(exc, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
    body = {"error": name, "detail": detail, "request_id": request_id(request)}
    headers = exc.headers
    if exc.status_code == 405:  # Starlette names one route's methods; the path may have more
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return json_response(body, exc.status_code, headers)


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers on this request's path, for `Allow`."""
    path = request.url.path
    methods = {
        method
        for template, verbs, _role in api_routes(request.app)
        if compile_path(template)[0].match(path)
        for method in verbs
    }
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
        for error in exc.errors()
    )
    body = {"error": "ValidationError", "detail": problems, "request_id": request_id(request)}
    return json_response(body, 422)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error(request, exc)


def install_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on `app`."""
    app.add_exception_handler(MloopError, _mloop_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
