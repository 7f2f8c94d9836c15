"""Job workers: claim a job, run it under a heartbeat, write its outcome.

`execute()` runs one claimed job; the `Worker` threads (inside `mloop serve`, or `mloop worker`
as its own process) and the Celery task all go through it, so retries, leases and idempotent
completion behave the same whoever runs the job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from mloop.errors import MloopError, UserError
from mloop.jobs import predict
from mloop.jobs.context import SHUTDOWN, JobContext, JobInterrupted
from mloop.jobs.models import ModelCache
from mloop.jobs.queue import Claim, Job, JobQueue
from mloop.settings import Settings

log = logging.getLogger("mloop.jobs")

Handler = Callable[[Job, JobContext], dict[str, Any]]

HANDLERS: dict[str, Handler] = {predict.KIND: predict.run_predict}

# Outcomes of execute()
DONE = "succeeded"
RETRY = "retry"
FAILED = "failed"
LOST = "lost"
RELEASED = "released"


def worker_name(prefix: str = "worker") -> str:
    """host:pid:prefix-xxxx, unique per worker thread; shown in `mloop jobs show`."""
    return f"{socket.gethostname()}:{os.getpid()}:{prefix}-{uuid.uuid4().hex[:6]}"


class _Heartbeat(threading.Thread):
    """Extends the lease every third of it while a chunk runs longer than the lease."""

    def __init__(self, context: JobContext, interval: float) -> None:
        super().__init__(name="mloop-job-heartbeat", daemon=True)
        self.context = context
        self.interval = interval
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                if not self.context.queue.heartbeat(self.context.claim):
                    self.context.lost.set()
                    return
            except Exception:  # the database may be briefly away; the next beat retries
                log.warning("heartbeat for job %s failed", self.context.claim.job.id)


def execute(
    claim: Claim,
    queue: JobQueue,
    settings: Settings,
    models: ModelCache,
    *,
    handlers: dict[str, Handler] | None = None,
    shutdown: threading.Event | None = None,
) -> str:
    """Run a claimed job to its outcome (DONE, RETRY, FAILED, LOST or RELEASED)."""
    handlers = handlers or HANDLERS
    job = claim.job
    context = JobContext(claim, queue, settings, models)
    if shutdown is not None:
        context.shutdown = shutdown
    handler = handlers.get(job.kind)
    if handler is None:
        queue.fail(claim, f"no handler for job kind {job.kind!r}", retry=False)
        return FAILED
    heartbeat = _Heartbeat(context, max(queue.lease.total_seconds() / 3, 0.05))
    heartbeat.start()
    try:
        result = handler(job, context)
    except JobInterrupted as exc:
        if exc.reason == SHUTDOWN:
            queue.release(claim)
            return RELEASED
        if exc.reason == "timeout":
            queue.fail(claim, str(exc), retry=False)
            return FAILED
        log.info("job %s stopped: %s", job.id, exc)
        return LOST
    except UserError as exc:  # the input is wrong: retrying cannot help
        queue.fail(claim, exc.message, retry=False)
        return FAILED
    except MloopError as exc:
        return _failed(queue, claim, exc.message)
    except Exception as exc:
        log.exception("job %s failed on attempt %d", job.id, job.attempts)
        return _failed(queue, claim, f"{type(exc).__name__}: {exc}")
    finally:
        heartbeat.done.set()
    if queue.complete(claim, result):
        return DONE
    log.info("job %s finished but its lease had moved on; result discarded", job.id)
    return LOST


def _failed(queue: JobQueue, claim: Claim, error: str) -> str:
    status = queue.fail(claim, error, retry=True)
    return RETRY if status == "queued" else FAILED if status == "failed" else LOST


class Worker:
    """`concurrency` threads that poll the queue and run jobs until `stop()`."""

    def __init__(
        self,
        queue: JobQueue,
        settings: Settings,
        *,
        models: ModelCache | None = None,
        handlers: dict[str, Handler] | None = None,
        concurrency: int | None = None,
        poll_seconds: float | None = None,
        name: str = "worker",
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.models = models or ModelCache(settings)
        self.handlers = handlers or HANDLERS
        self.concurrency = concurrency or settings.jobs_worker_concurrency
        self.poll_seconds = poll_seconds or settings.jobs_poll_seconds
        self.name = name
        self.outcomes: dict[str, int] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> Worker:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"mloop-job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def notify(self) -> None:
        """Wake idle threads now (a job was just submitted in this process)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; running jobs are handed back to the queue at their next chunk."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def run_until_idle(self) -> dict[str, int]:
        """Run due jobs in this thread until none is left (`mloop worker --burst`)."""
        name = worker_name(self.name)
        while not self._stop.is_set():
            claim = self.queue.claim(name, kinds=tuple(self.handlers))
            if claim is None:
                break
            self._run(claim)
        return dict(self.outcomes)

    def _loop(self) -> None:
        name = worker_name(self.name)
        while not self._stop.is_set():
            try:
                claim = self.queue.claim(name, kinds=tuple(self.handlers))
            except Exception:  # the database is away: wait and try again
                log.exception("cannot claim a job")
                claim = None
            if claim is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            self._run(claim)

    def _run(self, claim: Claim) -> None:
        try:
            outcome = execute(
                claim,
                self.queue,
                self.settings,
                self.models,
                handlers=self.handlers,
                shutdown=self._stop,
            )
        except Exception:  # writing the outcome failed; the lease expires and it runs again
            log.exception("cannot record the outcome of job %s", claim.job.id)
            outcome = "error"
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
