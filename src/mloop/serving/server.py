"""Run a real uvicorn server in a background thread (tests, the demo, notebooks).

    with ServerThread(create_app("churn@production")) as server:
        Client(server.url).predict({...})

`port=0` binds a free port; `.url` reports the one actually bound. For an mloop app, `start()`
also waits for the first model load attempt to finish (ready or failed; the server answers
either way), so traffic sent right after does not race the loader. `stop()` runs the app's
lifespan shutdown (the prediction log is drained) before it returns.

Also the start-up of a `mloop serve` process: `tune_gc()` (called by `mloop serve` before
uvicorn starts, and by `mloop.platform.serve_worker_app`, the app factory of each of its
worker processes). Building an app or a ServerThread leaves the interpreter's GC alone.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import uvicorn

from mloop.errors import ServiceUnavailableError

# The cyclic GC's youngest generation is collected after this many more container objects
# were made than freed (Python's default: 700). A server keeps a few thousand such objects in
# flight (requests, futures, frames), which at 700 were collected and promoted over and over:
# about 5% of the server's CPU per request under load (benchmarks/serving.py); at 10,000 the
# in-flight objects mostly die before a collection sees them.
YOUNG_GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Collect the youngest generation less often (never more often than configured).

    For a serving process only (`mloop serve`): it changes the whole interpreter.
    """
    young, *older = gc.get_threshold()
    if 0 < young < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, *older)


class ServerThread:
    """A uvicorn.Server on `host:port`, serving `app` from a daemon thread."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        start_timeout: float = 120.0,
        wait_for_model: bool = True,
    ) -> None:
        # lazy: serving.http checks the serving stack at import; `mloop serve`'s supervisor
        # imports this module for tune_gc only
        from mloop.serving.http import HTTP_PROTOCOL

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            access_log=False,
            http=HTTP_PROTOCOL,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self.app = app
        self.start_timeout = start_timeout
        self.wait_for_model = wait_for_model
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port=0)."""
        servers = getattr(self.server, "servers", None)
        if not servers:
            raise ServiceUnavailableError("the server is not started")
        return servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        """Start serving; return once the socket is bound and startup (lifespan) finished."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="mloop-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = f": {self._error}" if self._error else ""
                raise ServiceUnavailableError(
                    f"the server on {self.host} did not start{why}",
                    hint="run with log_level='info' to see uvicorn's startup log",
                )
            time.sleep(0.01)
        runtime = _runtime_of(self.app)
        if self.wait_for_model and runtime is not None:
            runtime.wait_until_settled(max(deadline - time.monotonic(), 0.0))
        return self

    def is_alive(self) -> bool:
        """True while the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully (lifespan shutdown runs) and wait for the thread."""
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(timeout)
        self._thread = None

    def _serve(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # reported by start()
            self._error = exc

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _runtime_of(app: Any) -> Any:
    """The ModelRuntime of an mloop app, or None for any other ASGI app."""
    state = getattr(getattr(app, "state", None), "mloop", None)
    return getattr(state, "runtime", None)
