"""A synchronous httpx client to an ASGI app in this process (no socket), lifespan included.

    with asgi_client(app) as http:
        http.post("/predict", json={"features": row})

The app runs on an event loop in a helper thread (an anyio blocking portal) that also runs the
app's lifespan, as a server speaks it: startup before the client is handed out, shutdown when
the block ends (so background tasks behave as under uvicorn). Each request is handed to
`httpx.ASGITransport` on that loop, its body replayed chunk by chunk as the client sent it;
server errors come back as responses (a 500 is asserted like any status). The two halves,
`running(app)` and `PortalTransport`, serve a caller with work between startup and the first
request (the test suite's `tests/support/apps.py` waits for the model there).

Responses are buffered whole: a test of an endless stream, of sockets or of the HTTP protocol
itself needs a real server (`mloop.serving.server.ServerThread`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

BASE_URL = "http://testserver"


class _Body(httpx.AsyncByteStream):
    """A request body read in the caller's thread, replayed to the app chunk by chunk."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class PortalTransport(httpx.BaseTransport):
    """A sync transport that runs `httpx.ASGITransport` for `app` on the portal's event loop."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.stream = _Body(list(request.stream))
        status, headers, raw = self._portal.call(self._send, request)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw))

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        response = await self._asgi.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return response.status_code, response.headers, raw


class _Lifespan:
    """The ASGI lifespan protocol, as a server speaks it: startup, then shutdown on request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = anyio.Event()
        self.stopping = anyio.Event()
        self.failure: str | None = None

    async def run(self) -> None:
        startup_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal startup_sent
            if not startup_sent:
                startup_sent = True
                return {"type": "lifespan.startup"}
            await self.stopping.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"].endswith(".failed"):
                self.failure = message.get("message") or message["type"]
            if message["type"].startswith("lifespan.startup."):
                self.started.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, receive, send)
        finally:
            self.started.set()  # an app that returned or raised at startup does not hang us


@contextmanager
def running(app: Any, timeout: float = 120.0) -> Iterator[BlockingPortal]:
    """The portal whose event loop runs `app`, its lifespan started; shut down on exit.

    Raises RuntimeError when the app's startup failed."""
    with start_blocking_portal() as portal:
        lifespan = _Lifespan(app)
        done = portal.start_task_soon(lifespan.run)
        portal.call(lifespan.started.wait)
        if lifespan.failure:
            raise RuntimeError(f"the app's startup failed: {lifespan.failure}")
        try:
            yield portal
        finally:
            portal.call(lifespan.stopping.set)
            done.result(timeout)


@contextmanager
def asgi_client(app: Any, timeout: float = 120.0, **client_options: Any) -> Iterator[httpx.Client]:
    """A client for `app` with its lifespan startup run before and shutdown after."""
    with running(app, timeout) as portal:
        client_options.setdefault("timeout", timeout)
        transport = PortalTransport(portal, app)
        with httpx.Client(transport=transport, base_url=BASE_URL, **client_options) as client:
            yield client
