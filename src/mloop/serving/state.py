"""What the routes of one server app share: settings, model runtime, metrics, services.

One typed `ServingState` per app, built by `create_app` and held as `app.mloop` (a plain
attribute of `ServingApp`, read per request without Starlette's `State` lookup) and as
`app.state.mloop`. Services and writers started in the lifespan are None until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from mloop.governance.audit_writer import AuditWriter
from mloop.model.loader import LoadedModel
from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter
from mloop.security.auth import Authenticator
from mloop.serving.batcher import Batcher
from mloop.serving.cache import MemoryCache, RedisCache, open_cache
from mloop.serving.live_counts import LiveCounts
from mloop.serving.metrics import NO_MODEL, ServingMetrics
from mloop.serving.pool import ModelPool
from mloop.serving.runtime import ModelRuntime
from mloop.settings import Settings

if TYPE_CHECKING:  # built after the state (they hold it): typed, not imported at runtime
    from mloop.deploy.service import DeploymentService
    from mloop.governance.approvals import ApprovalService
    from mloop.jobs.service import JobService
    from mloop.monitoring.service import MonitoringService
    from mloop.serving.traffic import Traffic

SWEEP_SECONDS = 0.1  # how soon after a swap (and how often while draining) batchers are swept


@dataclass
class ServingState:
    """Everything one server app's routes share; built once per app by `create_app`."""

    settings: Settings
    runtime: ModelRuntime
    metrics: ServingMetrics
    # Every reference served (the default runtime plus deployment variants).
    pool: ModelPool | None = None
    # The deployments this server routes by, and their live counts (GET /deployments/{name}).
    traffic: Traffic | None = None
    deploy_counts: LiveCounts | None = None
    # Services the control-plane routes use, built once at startup (or handed by the platform).
    deployments: DeploymentService | None = None
    approvals: ApprovalService | None = None
    jobs: JobService | None = None  # async jobs: embedded worker or Celery dispatch
    monitoring: MonitoringService | None = None  # live drift, feedback, alerts, retraining
    # Authentication and rate limits (None: requests pass untouched); API-call audit writer.
    auth: Authenticator | None = None
    audit: AuditWriter | None = None
    prediction_log: PredictionLogWriter | None = None  # attached at startup
    # Called with every answered batch and its validated frame (drift, shadow traffic, ...).
    # Listeners run on the response path, so they only enqueue work for their own threads.
    listeners: list[Callable[[PredictionBatch, Any], None]] = field(default_factory=list)
    cache: MemoryCache | RedisCache | None = None  # the prediction cache, opened at startup
    batchers: dict[tuple[str, str, str, int], Batcher] = field(default_factory=dict)
    _sweep: asyncio.TimerHandle | None = field(default=None, repr=False)  # batcher sweep timer

    def batcher(self, model: LoadedModel) -> Batcher:
        """The adaptive batcher of `model` (one per loaded model version in this process)."""
        # id(model): a version loaded again (rolled back to) gets its own batcher; the batcher
        # holds its model, so the id is not reused while the entry exists.
        key = (model.name, model.version, model.uri, id(model))
        found = self.batchers.get(key)
        if found is not None and found.model is model:
            return found
        if self.sweep_batchers() or id(model) not in self._served_models():
            self.schedule_sweep()  # a request still holding a swapped-out model
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

    def sweep_batchers(self) -> int:
        """Close the idle batchers of models no runtime serves (swapped out and drained).

        Returns how many such batchers are still busy (queued or in-flight requests finish on
        their model first: closing a batcher cancels its queue).
        """
        served = self._served_models()
        busy = 0
        for key, batcher in list(self.batchers.items()):
            if id(batcher.model) in served:
                continue
            if batcher.idle:
                batcher.close()
                del self.batchers[key]
            else:
                busy += 1
        return busy

    def schedule_sweep(self) -> None:
        """Sweep soon on the event loop, and again until no swapped-out batcher is left."""
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep_now)

    def _sweep_now(self) -> None:
        self._sweep = None
        if self.sweep_batchers():
            self.schedule_sweep()

    def _served_models(self) -> set[int]:
        """ids of the models some runtime serves now (their batchers stay open)."""
        runtimes = self.pool.runtimes() if self.pool is not None else [self.runtime]
        return {id(r.model) for r in runtimes if r.model is not None}

    def start_serving(self) -> None:
        """Open the prediction cache (lifespan startup)."""
        settings = self.settings
        self.cache = open_cache(settings.cache_url, settings.cache_ttl_seconds, settings.cache_size)
        if self.pool is not None:  # a hot swap leaves the old model's batcher to close when idle
            loop = asyncio.get_running_loop()

            def swapped(_event: Any) -> None:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self.schedule_sweep)

            self.pool.subscribe(swapped)

    async def stop_serving(self) -> None:
        """Stop the batchers' model threads and close the cache (lifespan shutdown)."""
        for batcher in self.batchers.values():
            batcher.close()
        self.batchers.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
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
    """The state of the app answering `request` (`ServingApp.mloop`)."""
    return request.scope["app"].mloop
