"""Which model this server answers with, and how it got there.

`ModelRuntime` loads the served reference in a background thread so the server answers
`/health` at once. When the primary fails it tries `settings.fallback_model_uris` in order
(the seed guide's ModelLoader) and records why each candidate failed. When every candidate
fails the runtime stays up, reports the reasons, and tries again every `retry_interval` seconds.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mloop.errors import ConfigError, MloopError, ServiceUnavailableError
from mloop.serving.loader import LoadedModel, load_model
from mloop.settings import Settings

log = logging.getLogger("mloop.serving")

RETRY_SECONDS = 30.0

LOADING = "loading"
READY = "ready"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class LoadFailure:
    """One candidate that could not be loaded, and why."""

    uri: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "error": self.error}


class ModelRuntime:
    """Holds the served model; loads it (with fallbacks) off the request path."""

    def __init__(
        self,
        reference: str | None,
        settings: Settings,
        *,
        retry_interval: float = RETRY_SECONDS,
        loader: Callable[[str, Settings], LoadedModel] = load_model,
        use_fallbacks: bool = True,
    ) -> None:
        fallbacks = list(settings.fallback_model_uris) if use_fallbacks else []
        candidates = ([reference] if reference else []) + fallbacks
        if not candidates:
            raise ConfigError(
                "no model to serve",
                hint="pass a MODEL_REF (churn@production) or set MLOOP_FALLBACK_MODEL_URIS",
            )
        self.reference = reference
        self.candidates = candidates
        self.settings = settings
        self.retry_interval = retry_interval
        self._loader = loader
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._settled = threading.Event()
        self.state = LOADING
        self.model: LoadedModel | None = None
        self.failures: list[LoadFailure] = []
        self.attempts = 0

    # -- what the server asks ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def fallback_used(self) -> str | None:
        """The URI serving instead of the primary reference, if a fallback took over."""
        if self.model is None or not self.reference:
            return None
        return None if self.model.source == self.reference else self.model.source

    @property
    def reason(self) -> str | None:
        """Why the runtime is not ready (None when it is)."""
        if self.model is not None:
            return None
        if self.state == LOADING and not self.failures:
            return f"loading {self.candidates[0]}"
        failures = "; ".join(f"{f.uri}: {f.error}" for f in self.failures)
        return f"no model could be loaded ({failures}); retrying every {self.retry_interval:g}s"

    def require(self) -> LoadedModel:
        """The served model, or ServiceUnavailableError with the reason."""
        model = self.model
        if model is None:
            raise ServiceUnavailableError(
                f"model not loaded: {self.reason}", hint="GET /ready reports the loading state"
            )
        return model

    def status(self) -> dict[str, Any]:
        """State, reason and the failures behind it (for /ready and /model/info)."""
        return {
            "state": self.state,
            "reason": self.reason,
            "failures": [f.to_dict() for f in self.failures],
            "attempts": self.attempts,
        }

    # -- loading -------------------------------------------------------------------------------

    def load_once(self) -> bool:
        """Try every candidate in order; keep the first that loads. True when a model serves."""
        failures: list[LoadFailure] = []
        for uri in self.candidates:
            try:
                model = self._loader(uri, self.settings)
            except MloopError as exc:
                failures.append(LoadFailure(uri, exc.message))
                log.warning("cannot load model %s: %s", uri, exc.message)
                continue
            except Exception as exc:  # a loader bug must not kill the server
                failures.append(LoadFailure(uri, f"{type(exc).__name__}: {exc}"))
                log.exception("unexpected error loading model %s", uri)
                continue
            model.source = uri
            with self._lock:
                self.model, self.failures, self.state = model, failures, READY
                self.attempts += 1
            log.info("serving %s version %s from %s", model.name, model.version, uri)
            _freeze_heap()
            return True
        with self._lock:
            self.failures, self.state = failures, UNAVAILABLE
            self.attempts += 1
        return False

    def start(self) -> None:
        """Load in a background thread; retry every `retry_interval` until a model serves."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mloop-model-loader", daemon=True)
        self._thread.start()

    def wait_until_settled(self, timeout: float | None = None) -> bool:
        """Block until the first load attempt finished (ready or unavailable)."""
        if self._thread is None:
            return self.state != LOADING
        self._settled.wait(timeout)
        return self.state != LOADING

    def stop(self, timeout: float = 5.0) -> None:
        """Stop retrying; a load in progress finishes in its (daemon) thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            loaded = self.load_once()
            self._settled.set()
            if loaded or self._stop.wait(self.retry_interval):
                return


def _freeze_heap() -> None:
    """Move the objects alive now (libraries, the model) out of the cyclic GC's reach.

    Without this, every full collection walks the whole heap of MLflow, pandas and
    scikit-learn objects: pauses of tens of milliseconds that stall the event loop and
    showed up as the p99 latency under load. Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()
