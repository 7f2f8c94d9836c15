"""Every model reference one server answers with, each held by its own `ModelRuntime`.

The served reference (`mloop serve churn@production`) is the pool's default runtime; the
deployments this server hosts add one runtime per distinct variant reference (`churn@candidate`,
`churn/7`), created and started on first use, so two variants naming the same reference share
one loaded model.

The pool also follows aliases: every `model_poll_seconds` a background thread refreshes each
alias runtime (`ModelRuntime.refresh`: hot swap when the alias moved), and `refresh()` does it
at once (the `POST /models/refresh` webhook, promotions through this server). Listeners added
with `subscribe` hear of every load, swap and failed swap (metrics, the batcher sweep).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from mloop.registry.resolve import check_reference
from mloop.serving.runtime import (
    FAILED,
    LOADED,
    RETRY_SECONDS,
    SWAPPED,
    ModelEvent,
    ModelRuntime,
    SwapOutcome,
)
from mloop.settings import Settings

log = logging.getLogger("mloop.serving")


class ModelPool:
    """Reference -> runtime, one per distinct reference; thread-safe get-or-create."""

    def __init__(
        self,
        settings: Settings,
        default: ModelRuntime,
        *,
        retry_interval: float = RETRY_SECONDS,
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.default = default
        self.retry_interval = retry_interval
        self.poll_seconds = settings.model_poll_seconds
        self._lock = threading.Lock()
        self._runtimes: dict[str, ModelRuntime] = {}
        self._listeners: list[Callable[[ModelEvent], None]] = []
        if metrics is not None:
            self.subscribe(served_metrics(metrics))
        default.listeners.append(self._notify)
        if default.reference:
            self._runtimes[default.reference] = default
        self._started = False
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._refreshing = threading.Lock()  # one pass over the runtimes at a time

    def runtime(self, reference: str) -> ModelRuntime:
        """The runtime of `reference`, created (and started, when the pool is) on first use.

        Raises ValidationError for a reference that is not servable.
        """
        found = self._runtimes.get(reference)
        if found is not None:
            return found
        reference = check_reference(reference)
        with self._lock:
            found = self._runtimes.get(reference)
            if found is None:
                found = ModelRuntime(
                    reference,
                    self.settings,
                    retry_interval=self.retry_interval,
                    use_fallbacks=False,
                    freeze_heap=self.default.freeze_heap,
                    on_refused=self.default.on_refused,
                )
                found.listeners.append(self._notify)
                self._runtimes[reference] = found
                if self._started:
                    found.start()
        return found

    def runtimes(self) -> list[ModelRuntime]:
        """The default runtime first, then every other in creation order."""
        with self._lock:
            others = [r for r in self._runtimes.values() if r is not self.default]
        return [self.default, *others]

    def subscribe(self, listener: Callable[[ModelEvent], None]) -> None:
        """Call `listener(event)` (from a loading thread) on every load, swap and failed swap."""
        self._listeners.append(listener)

    def refresh(self, name: str | None = None, *, force: bool = True) -> list[SwapOutcome]:
        """Refresh every runtime (of registered model `name`), one after another; blocking.

        Pinned references answer `pinned`; runtimes still on their first load are tried once.
        """
        chosen = [r for r in self.runtimes() if name is None or r.model_name == name]
        with self._refreshing:
            return [runtime.refresh(force=force) for runtime in chosen]

    def start(self) -> None:
        """Start loading every runtime (lifespan startup); later ones start on creation.

        Also starts the alias poll when `model_poll_seconds` > 0.
        """
        with self._lock:
            self._started = True
            runtimes = list(self._runtimes.values())
        if self.default not in runtimes:
            runtimes.insert(0, self.default)
        for runtime in runtimes:
            runtime.start()
        if self.poll_seconds > 0 and self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="mloop-model-poll", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(5.0)
            self._poller = None
        for runtime in self.runtimes():
            runtime.stop()

    def _poll(self) -> None:
        """Refresh the alias runtimes that serve a model; the loader thread retries the rest."""
        while not self._stop.wait(self.poll_seconds):
            for runtime in self.runtimes():
                if self._stop.is_set():
                    return
                if not (runtime.follows and runtime.ready):
                    continue
                with self._refreshing:
                    try:
                        runtime.refresh()
                    except Exception:  # refresh reports its failures; this is a bug guard
                        log.exception("refreshing %s failed", runtime.reference)

    def _notify(self, event: ModelEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("model event listener failed")


def served_metrics(metrics: Any) -> Callable[[ModelEvent], None]:
    """A listener keeping `mloop_model_served` and `mloop_model_swaps_total` current."""
    lock = threading.Lock()

    def record(event: ModelEvent) -> None:
        with lock:
            if event.kind == FAILED:
                metrics.model_swaps.labels(result="failed").inc()
                return
            if event.kind == SWAPPED:
                metrics.model_swaps.labels(result="success").inc()
            if event.kind in (LOADED, SWAPPED):
                if event.from_version is not None and event.from_version != event.to_version:
                    # bounded: only each reference's current version stays (0 first: the
                    # multiprocess files keep the last value written)
                    old = (event.reference, event.from_version)
                    metrics.model_served.labels(*old).set(0)
                    with contextlib.suppress(KeyError):
                        metrics.model_served.remove(*old)
                metrics.model_served.labels(
                    reference=event.reference, model_version=event.to_version
                ).set(1)

    return record
