"""Jobs inside a model server: submit async predictions, run or dispatch them, publish results.

One `JobService` per app, started and stopped by the app's lifespan. With the local backend it
runs an embedded `Worker` (unless MLOOP_JOBS_EMBEDDED_WORKER=false); with Celery it sends job
ids to the broker and re-sends those that went missing.

Whoever ran a job (this process, `mloop worker`, a Celery worker), its answered rows reach this
server's `state.publish` (prediction log, drift listeners) through the publisher thread: it
takes the right to publish each finished job with one compare-and-set, so every job's rows are
published once, by one server, even with several server processes.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any, Protocol

from mloop.errors import ServiceUnavailableError
from mloop.jobs import predict
from mloop.jobs.local import LocalBackend
from mloop.jobs.models import ModelCache
from mloop.jobs.queue import Job, JobQueue
from mloop.jobs.worker import Worker
from mloop.model.loader import LoadedModel
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.settings import Settings

log = logging.getLogger("mloop.jobs")


def make_backend(queue: JobQueue, settings: Settings, *, worker: Any = None) -> Any:
    """The configured backend (MLOOP_JOBS_BACKEND) over `queue`."""
    if settings.jobs_backend == "celery":
        # lazy: needs celery, the optional extra mloop[celery]
        from mloop.jobs.celery import CeleryBackend

        return CeleryBackend(queue, settings)

    return LocalBackend(queue, worker)


class ServedModel(Protocol):
    """What jobs need of the server they run in (serving's state provides it)."""

    @property
    def model(self) -> LoadedModel | None:
        """The model the server answers `/predict` with now, if any."""


class ServerSide(Protocol):
    """The serving state, as jobs see it: the served model and the publisher of answered rows."""

    runtime: ServedModel

    def publish(self, batch: PredictionBatch, frame: Any) -> None:
        """Hand answered rows to the prediction log and the drift listeners."""


class JobService:
    """The server's side of jobs; routes call `submit_predict`, `queue.get`, `queue.cancel`."""

    def __init__(
        self, settings: Settings, state: ServerSide, queue: JobQueue | None = None
    ) -> None:
        """`queue`: the platform's (mloop.platform); default: opened from `settings` at start."""
        self.settings = settings
        self.state = state
        self._given_queue = queue
        self.queue: JobQueue | None = None
        self.backend: Any = None
        self.error: str | None = None
        self.model_uris: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the queue, start the backend (and embedded worker) and the publisher."""
        try:
            self.queue = self._given_queue or JobQueue.from_settings(self.settings)
            worker = None
            if self.settings.jobs_backend == "local" and self.settings.jobs_embedded_worker:
                models = ModelCache(self.settings, served=lambda: self.state.runtime.model)
                worker = Worker(self.queue, self.settings, models=models, name="embedded")
            self.backend = make_backend(self.queue, self.settings, worker=worker)
            self.backend.start()
        except Exception as exc:  # the server still serves sync predictions
            self.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.error("async jobs are unavailable: %s", self.error)
            return
        self._thread = threading.Thread(target=self._run, name="mloop-job-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.backend is not None:
            self.backend.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def require_queue(self) -> JobQueue:
        if self.queue is None:
            raise ServiceUnavailableError(
                f"async jobs are unavailable: {self.error or 'the server is starting'}"
            )
        return self.queue

    def submit_predict(self, model: LoadedModel, instances: list[Any]) -> Job:
        """Commit a predict job for `model` (pinned by URI) and hand it to the backend."""
        self.require_queue()
        self.model_uris.add(model.uri)
        return self.backend.submit(
            predict.KIND,
            {"instances": instances, "columns": list(model.schema.names)},
            model_uri=model.uri,
            rows=len(instances),
        )

    # -- publisher -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.settings.jobs_poll_seconds):
            try:
                self.backend.sweep()
                self.publish_finished()
            except Exception:  # keep going: the database may be briefly away
                log.exception("job publisher pass failed")
        try:
            self.publish_finished()
        except Exception:
            log.exception("final job publisher pass failed")

    def publish_finished(self) -> int:
        """Publish the rows of finished jobs of this server's models; the count published."""
        queue = self.require_queue()
        model = self.state.runtime.model
        uris = set(self.model_uris)
        if model is not None:
            uris.add(model.uri)
        published = 0
        for job in queue.unpublished(uris):
            if queue.mark_published(job.id):
                self._publish(job, model)
                published += 1
        return published

    def _publish(self, job: Job, model: LoadedModel | None) -> None:
        result = job.result or {}
        answers = result.get("predictions") or []
        instances = job.payload.get("instances") or []
        if len(answers) != len(instances):
            log.error("job %s: %d answers for %d rows", job.id, len(answers), len(instances))
            return
        frame = None
        same_model = model is not None and model.uri == job.model_uri
        if same_model:
            try:
                frame = model.schema.to_frame(instances)
            except Exception:
                log.warning("job %s: rows no longer fit the served model's schema", job.id)
        self.state.publish(
            PredictionBatch(
                model_name=str(result.get("model_name", "")),
                model_version=str(result.get("model_version", "")),
                created_at=job.finished_at or datetime.now(UTC),
                ids=[a["prediction_id"] for a in answers],
                rows=instances,
                predictions=[a["prediction"] for a in answers],
                probabilities=[a["probability"] for a in answers],
                latency_ms=float(result.get("total_latency_ms", 0.0)),
                columns=job.payload.get("columns") or (),
            ),
            frame,
        )
