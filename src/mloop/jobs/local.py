"""The embedded backend: jobs wait in the platform database for database-polling workers.

Nothing to start by hand: `mloop serve` runs a worker in-process (MLOOP_JOBS_EMBEDDED_WORKER),
and `mloop worker` adds more processes on this or any machine that reaches the database.
"""

from __future__ import annotations

from typing import Any

from mloop.jobs.queue import Job, JobQueue
from mloop.jobs.worker import Worker


class LocalBackend:
    """Submit = commit the row (and wake the in-process worker, if any)."""

    name = "local"

    def __init__(self, queue: JobQueue, worker: Worker | None = None) -> None:
        self.queue = queue
        self.worker = worker

    def submit(self, kind: str, payload: dict[str, Any], **fields: Any) -> Job:
        job = self.queue.submit(kind, payload, backend=self.name, **fields)
        if self.worker is not None:
            self.worker.notify()
        return job

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def sweep(self) -> None:
        """Nothing to do: workers find due and expired jobs themselves."""

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
