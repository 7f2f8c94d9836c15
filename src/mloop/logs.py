"""Log lines as text or JSON (`MLOOP_LOG_FORMAT`), each with the request it belongs to.

`configure(fmt, level)` sets the root handler of a worker process; `uvicorn_config(fmt, level)`
is the same as the `log_config` uvicorn applies in each server worker. A JSON line holds
`timestamp, level, logger, message` and, when known, `request_id, model, version, latency_ms`
(plus the traceback as `exc`). `RequestIdMiddleware` gives every HTTP request its id (the
client's `X-Request-ID` when usable, else a new one), returns it in `X-Request-ID`, and binds
it for every line logged while the request runs. Known secret shapes (API keys, bearer tokens,
passwords in URLs) are masked in every line, whatever logged them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

FIELDS = ("request_id", "model", "version", "latency_ms")
REQUEST_ID_HEADER = b"x-request-id"
_USABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# httpx logs each request's full URL at info: a webhook URL's path is its secret
QUIET = {"httpx": "WARNING", "httpcore": "WARNING"}
_context: ContextVar[dict[str, Any] | None] = ContextVar("mloop_log_context", default=None)
_SECRETS = (
    (re.compile(r"mlk_[0-9a-f]+_[A-Za-z0-9_-]+"), "mlk_***"),  # API keys
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "***jwt***"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1***"),
    (re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"), r"\1***"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),  # user:password@ in URLs
)


# Request ids come from a pool filled by one `os.urandom` call per 256 ids: `uuid4()` per
# request is a syscall that releases the GIL on the event loop (a model thread then holds it)
# and a UUID object. The pool is emptied in a forked child so no two processes share ids.
_POOL_SIZE = 256
_id_pool: list[str] = []
os.register_at_fork(after_in_child=_id_pool.clear)


def new_request_id() -> str:
    """A new random id of 32 hex digits (128 random bits), as `uuid4().hex` spells one."""
    while True:
        try:
            return _id_pool.pop()
        except IndexError:
            digits = os.urandom(16 * _POOL_SIZE).hex()
            _id_pool.extend(digits[i : i + 32] for i in range(0, len(digits), 32))


def request_id() -> str | None:
    """The id of the request being answered (None outside a request)."""
    fields = _context.get()
    return fields.get("request_id") if fields else None


def bind(**fields: Any) -> None:
    """Attach fields (model, version, ...) to the lines of the request being answered."""
    current = _context.get()
    if current is not None:
        current.update(fields)


def usable_id(value: str | bytes | None) -> str | None:
    """A client-sent request id when it is 1-128 of `A-Za-z0-9._:-`, else None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if value and _USABLE_ID.fullmatch(value) else None


def redact(text: str) -> str:
    """`text` with API keys, tokens and URL passwords masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _Context(logging.Filter):
    """Copies the request's fields onto each record (explicit `extra=` values win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name) if fields else None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger [request_id] message`; secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        if rid:
            head, _, rest = text.partition(f" {record.name} ")
            text = f"{head} {record.name} [{rid}] {rest}"
        return redact(text)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for `MLOOP_LOG_FORMAT` (`text` or `json`)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str = "text", level: str = "info") -> None:
    """Log to stderr through `fmt`'s formatter at `level` (a worker or CLI process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_Context())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet_level in QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)


def uvicorn_config(fmt: str = "text", level: str = "info") -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers and mloop's through one stderr handler."""
    factory = f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "mloop",
        "filters": ["context"],
    }
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}._Context"}},
        "formatters": {"mloop": {"()": factory}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": quiet,
            "uvicorn.error": quiet,
            "uvicorn.access": quiet,
            **{name: {"level": value} for name, value in QUIET.items()},
        },
    }


class RequestIdMiddleware:
    """ASGI middleware: the request id in and out (`X-Request-ID`), bound for log lines.

    The id is also put on the request's state (`mloop_request_id`), where error bodies and
    the API-call audit row read it. With `log_requests`, one `mloop.request` line per request
    gives its status and latency (and the model and version the route bound).
    """

    def __init__(self, app: Any, *, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests
        self.log = logging.getLogger("mloop.request")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for key, value in scope.get("headers", ()):
            if key == REQUEST_ID_HEADER:
                rid = usable_id(value)
                break
        rid = rid or new_request_id()
        scope.setdefault("state", {})["mloop_request_id"] = rid
        fields: dict[str, Any] = {"request_id": rid}
        token = _context.set(fields)
        started = time.perf_counter()
        status = 500
        header = (REQUEST_ID_HEADER, rid.encode("latin-1"))

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_requests:
                fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
                self.log.info("%s %s %d", scope.get("method"), scope.get("path"), status)
            _context.reset(token)
