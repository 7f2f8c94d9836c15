"""A synchronous httpx client to an ASGI app in this process (no socket), lifespan included.

The app runs on an event loop in a helper thread (an anyio blocking portal); each request is
handed to `httpx.ASGITransport` there. Startup runs before the client is returned, shutdown
when the block ends. (tests/support/apps.py is the test suite's fuller version of this.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

BASE_URL = "http://testserver"


class _PortalTransport(httpx.BaseTransport):
    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)
        request = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        status, headers, raw = self._portal.call(self._send, request)
        return httpx.Response(status, headers=headers, content=raw)

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        response = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return response.status_code, response.headers, raw


async def _lifespan(app: Any, started: anyio.Event, stopping: anyio.Event, failed: list) -> None:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "lifespan.startup"}
        await stopping.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith(".failed"):
            failed.append(message.get("message") or message["type"])
        if message["type"].startswith("lifespan.startup."):
            started.set()

    try:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    finally:
        started.set()


@contextmanager
def asgi_client(app: Any, timeout: float = 120.0) -> Iterator[httpx.Client]:
    """A client for `app` with its lifespan startup run before and shutdown after."""
    with start_blocking_portal() as portal:
        started, stopping = portal.call(anyio.Event), portal.call(anyio.Event)
        failed: list[str] = []
        done = portal.start_task_soon(_lifespan, app, started, stopping, failed)
        portal.call(started.wait)
        if failed:
            raise RuntimeError(f"the app's startup failed: {failed[0]}")
        try:
            transport = _PortalTransport(portal, app)
            with httpx.Client(transport=transport, base_url=BASE_URL, timeout=timeout) as client:
                yield client
        finally:
            portal.call(stopping.set)
            done.result(timeout)
