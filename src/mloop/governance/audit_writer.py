"""API-call audit rows, written off the response path by a background thread.

The middleware appends one small tuple per request to a bounded queue (`mloop.background`);
the writer thread wakes at most every `interval` seconds under load and appends everything
queued to the chain in one transaction per `batch` events (`AuditLog.append_entries`: one
chain lock, the HMACs in a tight loop, one executemany). An API-call tuple becomes its stored
row directly (detail text from a dict built in sorted key order, no AuditEvent). Timestamps
are taken when the call ends and formatted in the thread. `close()` drains the queue, so a
clean shutdown loses nothing. If the queue ever overflows, the loss is itself recorded as an
`audit.dropped` row, so the trail shows the gap instead of hiding it. During a database
outage the rows go to a disk spool (`mloop.spool`, given `spool_dir`) and are appended to the
chain, in order, once the database answers (even by the next process, if this one dies);
without a spool they are retried in memory for up to `retry_seconds` while calls keep
queueing: delayed, not lost.

Governance actions (approvals, promotions, keys, deployments) do not come through here: they
call `AuditLog.record` and are committed before the request is answered.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mloop.background import BackgroundQueue, Outage
from mloop.governance.audit import AuditEvent, AuditLog, Entry, entry
from mloop.spool import Spool, SpooledWrites
from mloop.store.db import transient

log = logging.getLogger("mloop.audit")

# Probes and scrapes change nothing and come every few seconds; they are not audited.
UNAUDITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
DIGEST_PREFIXES = ("/predict",)


# One API call as the middleware saw it: (time.time(), actor, method, path, status,
# duration_ms, client, input_sha256 or None, request_id or None). The writer thread turns it
# into an AuditEvent.
ApiCall = tuple[float, str, str, str, int, float, str | None, str | None, str | None]


class AuditWriter:
    """A background thread that appends queued events to the audit chain in batches."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        max_queue: int = 100_000,
        batch: int = 500,
        interval: float = 0.2,
        retry_seconds: float = 600.0,
        spool_dir: Path | None = None,
    ) -> None:
        self.audit = audit
        self.outage = Outage()  # the database failing now: /ready reports it
        self.batch = batch
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._stamps = Timestamps()  # used by the writer thread only
        self._writes = SpooledWrites(
            Spool(spool_dir) if spool_dir is not None else None,
            audit.append_entries,
            what="appending audit events",
            outage=self.outage,
            give_up_after=retry_seconds,
            transient=transient,
            on_lost=self._lost,
        )
        self._queue: BackgroundQueue[AuditEvent | tuple] = BackgroundQueue(
            "mloop-audit",
            self._handle,
            max_items=max_queue,
            batch=batch,
            linger=interval,
            tick=self._writes.tick,
            tick_seconds=1.0,
        )

    def submit(self, event: AuditEvent) -> None:
        """Queue an event; never blocks the caller."""
        if not self._queue.put(event):
            self.dropped += 1

    def submit_call(self, call: ApiCall) -> None:
        """Queue one API call (the middleware's cheap path); never blocks the caller."""
        if not self._queue.put(call):
            self.dropped += 1

    def flush(self) -> None:
        """Block until everything queued so far is written."""
        self._queue.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        self._queue.close(timeout)
        if self.dropped:  # losses noticed after the last batch still leave their trace
            self._handle([])
        self._writes.close()  # what is still spooled stays for the next writer

    def _handle(self, items: list[AuditEvent | tuple]) -> None:
        stamps = self._stamps
        entries = [
            entry(item) if isinstance(item, AuditEvent) else _call_entry(item, stamps)
            for item in items
        ]
        if self.dropped:
            lost, self.dropped = self.dropped, 0
            entries.append(entry(AuditEvent("mloop", "audit.dropped", "api", {"events": lost})))
        self._write(entries)

    def _write(self, entries: list[Entry]) -> None:
        for start in range(0, len(entries), self.batch):
            chunk = entries[start : start + self.batch]
            # each attempt is one transaction that re-reads the chain head: safe to repeat
            if self._writes(chunk):
                self.written += len(chunk)

    def _lost(self, events: int) -> None:
        self.dropped += events  # recorded as an audit.dropped row by the next batch


_DUMPS = orjson.dumps


def _call_entry(call: tuple, stamps: Timestamps) -> Entry:
    """The stored row of one API call, its detail written by orjson from a dict built in
    sorted key order (the text `_detail_text` gives for the same dict, without its checks).

    Any value of another type than the middleware's (a float that is not finite, a str
    subclass) goes the general way, through an AuditEvent.
    """
    at, actor, method, path, status, duration_ms, client, digest, *rest = call
    rid = rest[0] if rest else None
    if (
        type(actor) is str
        and type(method) is str
        and type(path) is str
        and type(status) is int
        and type(duration_ms) is float
        and duration_ms - duration_ms == 0.0  # finite: json.dumps would write NaN, orjson null
        and (client is None or type(client) is str)
        and (digest is None or type(digest) is str)
        and (rid is None or type(rid) is str)
    ):
        detail: dict[str, Any] = {"client": client, "duration_ms": duration_ms}
        if digest is not None:
            detail["input_sha256"] = digest
        detail["method"] = method
        detail["path"] = path
        if rid is not None:  # the X-Request-ID the call was answered with (mloop.logs)
            detail["request_id"] = rid
        detail["status"] = status
        try:
            text = _DUMPS(detail).decode()
        except orjson.JSONEncodeError:  # a lone surrogate: json.dumps escapes it
            pass
        else:
            return (stamps.iso(at), actor[:128], "api.call", f"{method} {path}"[:512], text)
    return entry(_call_event(call, stamps))


def _call_event(call: tuple, stamps: Timestamps) -> AuditEvent:
    at, actor, method, path, status, duration_ms, client, digest, *rest = call
    rid = rest[0] if rest else None
    actor, method, path = _storable(actor), _storable(method), _storable(path)
    detail: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "client": client,
    }
    if digest is not None:
        detail["input_sha256"] = digest
    if rid is not None:
        detail["request_id"] = rid
    return AuditEvent(actor, "api.call", f"{method} {path}", detail, stamps.iso(at))


def _storable(text: Any) -> Any:
    """`text` with any lone surrogate written as its escape (`\\ud800`), which UTF-8, and so
    SQLite and PostgreSQL, cannot store: a request path may carry one, and its call is still
    audited. Other text is returned as it is."""
    if type(text) is not str or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Timestamps:
    """Formats epoch seconds as audit.now_iso does, each second once (one per writer thread)."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # (epoch second, its text up to ".")

    def iso(self, at: float) -> str:
        """`datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")`.

        The microseconds are rounded as CPython's `fromtimestamp` does: the fraction of the
        second (exact in floating point), times 1e6, rounded half to even, which may carry
        into the next second. Without a datetime per call: about a third of its cost.
        """
        if not at >= 0:  # before 1970 (or NaN): the datetime way
            moment = datetime.fromtimestamp(at, UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        second = int(at)
        micro = round((at - second) * 1e6)
        if micro >= 1_000_000:
            second += 1
            micro -= 1_000_000
        cached = self._second
        if second != cached[0]:
            text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            cached = self._second = (second, text)
        return f"{cached[1]}{micro:06d}Z"


class AuditMiddleware:
    """ASGI middleware: one `api.call` event per request (identity, method, path, status,
    duration; sha256 of the body for prediction calls).

    `answered_predictions=False` skips prediction calls answered with a 2xx (their rows are in
    the prediction log); refused and failed ones are still audited. The response path's share
    is a tuple append: no dict, no timestamp formatting, no hashing object for other calls.
    `writer` returns the writer rows go to (None: not started, nothing queued); without it the
    app's `state.mloop_audit` is used.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        answered_predictions: bool = True,
        writer: Callable[[], AuditWriter | None] | None = None,
    ) -> None:
        self.app = app
        self.answered_predictions = answered_predictions
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        digest = hashlib.sha256() if path.startswith(DIGEST_PREFIXES) else None

        async def receive_hashing() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))  # type: ignore[union-attr]
            return message

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_hashing if digest is not None else receive, send_status)
        finally:
            self.record(scope, status, started, digest.hexdigest() if digest is not None else None)

    def record(self, scope: Scope, status: int, started: float, digest: str | None) -> None:
        """Queue the audit row of one answered call (`started`: its `time.perf_counter()`).

        The serving fast path calls this directly instead of wrapping its endpoint.
        """
        writer = self.writer() if self.writer is not None else _app_writer(scope)
        if writer is None:
            return
        path = scope.get("path", "")
        if (
            self.answered_predictions
            or status >= 300
            or not is_prediction(scope.get("method"), path)
        ):
            state = scope.get("state") or {}
            client = scope.get("client")
            writer.submit_call(
                (
                    time.time(),
                    state.get("mloop_identity") or "anonymous",
                    scope.get("method"),
                    path,
                    status,
                    round((time.perf_counter() - started) * 1000, 3),
                    client[0] if client else None,
                    digest,
                    state.get("mloop_request_id"),
                )
            )


def is_prediction(method: str | None, path: str) -> bool:
    """A call to a route that answers predictions (each answered row is in the prediction log)."""
    if method != "POST":
        return False
    if path.startswith(("/predict", "/invocations")):
        return True
    parts = path.split("/")
    if parts[1:2] == ["v2"]:  # /v2/models/{name}[/versions/{v}]/infer
        return parts[-1] == "infer"
    # /deployments/{name}/predict[/batch]
    return parts[1:2] == ["deployments"] and parts[3:] in (["predict"], ["predict", "batch"])


def _app_writer(scope: Scope) -> AuditWriter | None:
    """The writer on the app's `state.mloop_audit` (apps that pass no `writer`)."""
    return getattr(getattr(scope.get("app"), "state", None), "mloop_audit", None)
