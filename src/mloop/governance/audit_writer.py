"""API-call audit rows, written off the response path by a background thread.

The middleware puts one event per request on a bounded queue; the writer appends them in
batches (one chain lock per batch). `close()` drains the queue, so a clean shutdown loses
nothing. If the queue ever overflows, the loss is itself recorded as an `audit.dropped` row,
so the trail shows the gap instead of hiding it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mloop.governance.audit import AuditEvent, AuditLog

log = logging.getLogger("mloop.audit")

_STOP = object()
# Probes and scrapes change nothing and come every few seconds; they are not audited.
UNAUDITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
DIGEST_PREFIXES = ("/predict",)


class AuditWriter:
    """A background thread that appends queued events to the audit chain in batches."""

    def __init__(
        self, audit: AuditLog, *, max_queue: int = 100_000, batch: int = 500, interval: float = 0.2
    ) -> None:
        self.audit = audit
        self.batch = batch
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="mloop-audit", daemon=True)
        self._thread.start()

    def submit(self, event: AuditEvent) -> None:
        """Queue an event; never blocks the caller."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            pending: list[AuditEvent] = []
            try:
                item = self._queue.get(timeout=self.interval)
            except queue.Empty:
                item = None
            deadline = time.monotonic() + self.interval
            while item is not None:
                if item is _STOP:
                    stop = True
                    break
                pending.append(item)
                if len(pending) >= self.batch or time.monotonic() > deadline:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if stop:  # drain whatever is still queued behind the stop marker
                while True:
                    try:
                        extra = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if extra is not _STOP:
                        pending.append(extra)
            if self.dropped:
                lost, self.dropped = self.dropped, 0
                pending.append(AuditEvent("mloop", "audit.dropped", "api", {"events": lost}))
            self._write(pending)

    def _write(self, events: list[AuditEvent]) -> None:
        for start in range(0, len(events), self.batch):
            chunk = events[start : start + self.batch]
            for attempt in range(3):
                try:
                    self.audit.append(chunk)
                    self.written += len(chunk)
                    break
                except Exception:
                    if attempt == 2:
                        log.exception("cannot write %d audit events", len(chunk))
                        self.dropped += len(chunk)
                    else:
                        time.sleep(0.2 * (attempt + 1))


class AuditMiddleware:
    """ASGI middleware: one `api.call` event per request (identity, method, path, status,
    duration; sha256 of the body for prediction calls)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        digest = hashlib.sha256() if path.startswith(DIGEST_PREFIXES) else None

        async def receive_hashing() -> Message:
            message = await receive()
            if digest is not None and message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_hashing, send_status)
        finally:
            writer = _writer(scope)
            if writer is not None:
                state = scope.get("state") or {}
                client = scope.get("client")
                detail: dict[str, Any] = {
                    "method": scope.get("method"),
                    "path": path,
                    "status": status["code"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": client[0] if client else None,
                }
                if digest is not None:
                    detail["input_sha256"] = digest.hexdigest()
                actor = state.get("mloop_identity") or "anonymous"
                writer.submit(
                    AuditEvent(actor, "api.call", f"{scope.get('method')} {path}", detail)
                )


def _writer(scope: Scope) -> AuditWriter | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "mloop_audit", None)
