"""The Celery backend: the same jobs, run by `celery worker` processes over Redis.

    MLOOP_JOBS_BACKEND=celery mloop serve churn@production
    celery -A mloop.jobs.celery worker --queues mloop-jobs --concurrency 2

The database row stays the source of truth: a Celery message only carries the job id, and the
task claims the row with a lease exactly like an embedded worker (so a duplicate delivery is a
no-op). Messages are acknowledged late and re-queued when a worker process is lost; the Redis
visibility timeout is set above `MLOOP_JOBS_MAX_SECONDS`, the longest a job may run, so a
running job is never handed to a second worker while the first still works on it. Retries
re-send the task with the queue's backoff as countdown. A server sweeps jobs whose message was
never sent (broker down at submit), jobs sent long ago and still unclaimed (a broker that
restarted without its data lost the message) and jobs whose worker vanished (lease expired),
and sends them again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from mloop.errors import require
from mloop.jobs.models import ModelCache
from mloop.jobs.queue import Job, JobQueue
from mloop.jobs.worker import RETRY, execute, worker_name
from mloop.settings import Settings, get_settings

log = logging.getLogger("mloop.jobs")

TASK_NAME = "mloop.run_job"


def visibility_timeout(settings: Settings) -> int:
    """Seconds before Redis re-delivers an unacknowledged message: above the longest job."""
    return int(settings.jobs_max_seconds * 1.25 + 60)


def make_app(settings: Settings) -> Any:
    """A Celery app for these settings (broker in Redis, late acks, one task)."""
    celery = require("celery", "celery")
    application = celery.Celery("mloop")
    application.conf.update(
        broker_url=settings.celery_broker_url,
        result_backend=settings.celery_broker_url,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.celery_queue,
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    application.task(name=TASK_NAME, bind=True)(_run_job)
    return application


_models: ModelCache | None = None


def _run_job(task: Any, job_id: str) -> str:
    """Claim the job row and run it; a job someone else holds (or finished) is skipped."""
    global _models
    settings = get_settings()
    queue = JobQueue.from_settings(settings)
    claim = queue.claim(worker_name("celery"), job_id=job_id)
    if claim is None:
        return "skipped"
    if _models is None:
        _models = ModelCache(settings)
    outcome = execute(claim, queue, settings, _models)
    if outcome == RETRY:
        job = queue.get(job_id)
        countdown = max((job.run_after - datetime.now(UTC)).total_seconds(), 0.0)
        task.apply_async((job_id,), countdown=countdown, queue=settings.celery_queue)
        queue.mark_dispatched(job_id)
    return outcome


class CeleryBackend:
    """Submit = commit the row, then send its id to the Celery queue."""

    name = "celery"

    def __init__(self, queue: JobQueue, settings: Settings, application: Any = None) -> None:
        self.queue = queue
        self.settings = settings
        self.app = application or make_app(settings)
        # A job whose worker vanished (lease expired) is sent again at most this often.
        self.redispatch_seconds = max(settings.jobs_lease_seconds * 2, 5.0)
        # A job sent this long ago and still unclaimed is sent again (Redis restarted empty).
        self.lost_seconds = max(self.redispatch_seconds * 6, 30.0)

    def submit(self, kind: str, payload: dict[str, Any], **fields: Any) -> Job:
        job = self.queue.submit(kind, payload, backend=self.name, **fields)
        self.dispatch(job.id)
        return job

    def dispatch(self, job_id: str) -> bool:
        """Send the job's id to the broker; False (logged, swept later) when it is away."""
        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=self.settings.celery_queue)
        except Exception as exc:
            log.warning("cannot send job %s to Celery (will retry): %s", job_id, exc)
            return False
        self.queue.mark_dispatched(job_id)
        return True

    def start(self) -> None:
        """Nothing runs here: `celery worker` processes run the jobs."""

    def sweep(self) -> None:
        due = self.queue.due_for_dispatch(
            older_than=self.redispatch_seconds, lost_after=self.lost_seconds
        )
        for job_id in due:
            self.dispatch(job_id)

    def stop(self) -> None:
        pass


# `celery -A mloop.jobs.celery worker` finds this.
app = make_app(get_settings())
