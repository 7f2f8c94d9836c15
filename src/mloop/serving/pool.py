"""Every model reference one server answers with, each held by its own `ModelRuntime`.

The served reference (`mloop serve churn@production`) is the pool's default runtime; the
deployments this server hosts add one runtime per distinct variant reference (`churn@candidate`,
`churn/7`), created and started on first use, so two variants naming the same reference share
one loaded model.
"""

from __future__ import annotations

import threading

from mloop.serving.loader import check_reference
from mloop.serving.runtime import RETRY_SECONDS, ModelRuntime
from mloop.settings import Settings


class ModelPool:
    """Reference -> runtime, one per distinct reference; thread-safe get-or-create."""

    def __init__(
        self,
        settings: Settings,
        default: ModelRuntime,
        *,
        retry_interval: float = RETRY_SECONDS,
    ) -> None:
        self.settings = settings
        self.default = default
        self.retry_interval = retry_interval
        self._lock = threading.Lock()
        self._runtimes: dict[str, ModelRuntime] = {}
        if default.reference:
            self._runtimes[default.reference] = default
        self._started = False

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
                )
                self._runtimes[reference] = found
                if self._started:
                    found.start()
        return found

    def runtimes(self) -> list[ModelRuntime]:
        """The default runtime first, then every other in creation order."""
        with self._lock:
            others = [r for r in self._runtimes.values() if r is not self.default]
        return [self.default, *others]

    def start(self) -> None:
        """Start loading every runtime (lifespan startup); later ones start on creation."""
        with self._lock:
            self._started = True
            runtimes = list(self._runtimes.values())
        if self.default not in runtimes:
            runtimes.insert(0, self.default)
        for runtime in runtimes:
            runtime.start()

    def stop(self) -> None:
        for runtime in self.runtimes():
            runtime.stop()
