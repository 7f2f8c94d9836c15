"""Run an ASGI app in-process for a test: its lifespan run, no socket, no uvicorn thread.

    with in_process(create_app("churn@production", settings)) as http:
        http.post("/predict", json={"features": row})

The client is a plain `httpx.Client` on `mloop.testing.asgi`'s transport and lifespan (the
app on an event loop in a helper thread, startup before the client is handed out, shutdown
when the block ends, so background tasks and the prediction log behave as under uvicorn). For
an mloop app the first model load attempt has also finished before the client is handed out,
as `ServerThread` does. Server errors come back as responses (a 500 is asserted like any
status).

Responses are buffered whole: a test of an endless stream, of sockets or of the HTTP protocol
itself needs a real server (`mloop.serving.server.ServerThread`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from mloop.testing.asgi import BASE_URL, PortalTransport, running


class AppClient(httpx.Client):
    """An httpx.Client bound to one in-process app (`.app`, for reaching its state)."""

    def __init__(self, app: Any, transport: httpx.BaseTransport, **options: Any) -> None:
        super().__init__(transport=transport, base_url=BASE_URL, **options)
        self.app = app


def runtime_of(app: Any) -> Any:
    """The ModelRuntime of an mloop app, or None for any other ASGI app."""
    state = getattr(getattr(app, "state", None), "mloop", None)
    return getattr(state, "runtime", None)


@contextmanager
def in_process(
    app: Any, *, wait_for_model: bool = True, timeout: float = 120.0, **client_options: Any
) -> Iterator[AppClient]:
    """A client for `app`, with the app's lifespan startup run before and shutdown after.

    The client's `.app` is `app`, so tests can reach `client.app.state` as with a server.
    """
    with running(app, timeout) as portal:
        runtime = runtime_of(app)
        if wait_for_model and runtime is not None:
            runtime.wait_until_settled(timeout)
        client_options.setdefault("timeout", timeout)
        with AppClient(app, PortalTransport(portal, app), **client_options) as client:
            yield client
