"""What the routes of one server app share: settings, model runtime, metrics, prediction log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter
from mloop.serving.batcher import Batcher
from mloop.serving.loader import LoadedModel
from mloop.serving.metrics import NO_MODEL, ServingMetrics
from mloop.serving.pool import ModelPool
from mloop.serving.runtime import ModelRuntime
from mloop.settings import Settings


@dataclass
class ServingState:
    """Held on `app.state.mloop`; the prediction log is attached at startup."""

    settings: Settings
    runtime: ModelRuntime
    metrics: ServingMetrics
    prediction_log: PredictionLogWriter | None = None
    # Called with every answered batch and its validated frame (drift, shadow traffic, ...).
    # Listeners run on the response path, so they only enqueue work for their own threads.
    listeners: list[Callable[[PredictionBatch, Any], None]] = field(default_factory=list)
    cache: Any = None  # serving.cache.MemoryCache | RedisCache, attached at startup
    batchers: dict[tuple[str, str, str], Batcher] = field(default_factory=dict)
    # Every reference served (the default runtime plus deployment variants), set by create_app.
    pool: ModelPool | None = None

    def batcher(self, model: LoadedModel) -> Batcher:
        """The adaptive batcher of `model` (one per loaded model version in this process)."""
        key = (model.name, model.version, model.uri)
        found = self.batchers.get(key)
        if found is not None and found.model is model:
            return found
        served = self._served_models()
        for old_key, old in list(self.batchers.items()):  # a swapped-out model's idle batcher
            if old.idle and id(old.model) not in served:
                old.close()
                del self.batchers[old_key]
        settings = self.settings
        created = Batcher(
            model,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_in_flight=settings.max_in_flight,
            metrics=self.metrics,
            publish=self.publish,
        )
        self.batchers[key] = created
        return created

    def _served_models(self) -> set[int]:
        """ids of the models some runtime serves now (their batchers stay open)."""
        runtimes = self.pool.runtimes() if self.pool is not None else [self.runtime]
        return {id(r.model) for r in runtimes if r.model is not None}

    def start_serving(self) -> None:
        """Open the prediction cache (lifespan startup)."""
        from mloop.serving.cache import open_cache

        settings = self.settings
        self.cache = open_cache(settings.cache_url, settings.cache_ttl_seconds, settings.cache_size)

    async def stop_serving(self) -> None:
        """Stop the batchers' model threads and close the cache (lifespan shutdown)."""
        for batcher in self.batchers.values():
            batcher.close()
        self.batchers.clear()
        if self.cache is not None:
            await self.cache.close()
            self.cache = None

    def publish(self, batch: PredictionBatch, frame: Any) -> None:
        """Hand an answered batch to the prediction log and every listener; never raises."""
        if self.prediction_log is not None:
            self.prediction_log.submit(batch)
        for listener in self.listeners:
            try:
                listener(batch, frame)
            except Exception:
                logging.getLogger("mloop.serving").exception("prediction listener failed")

    @property
    def version_label(self) -> str:
        """The model_version metric label right now ("none" while no model is loaded)."""
        model = self.runtime.model
        return model.version if model is not None else NO_MODEL


def serving_state(request: Request) -> ServingState:
    return request.app.state.mloop
