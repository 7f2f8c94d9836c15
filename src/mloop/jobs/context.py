"""What a running job sees: its claim, the settings, models, and a way to report progress.

`report()` and `check()` raise `JobInterrupted` when the job must stop: it was cancelled, its
lease went to another worker, its worker is shutting down, or it ran past `jobs_max_seconds`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mloop.jobs.models import ModelCache
from mloop.jobs.queue import Claim, JobQueue
from mloop.settings import Settings


class JobInterrupted(Exception):
    """The job stops before finishing; `reason` says why (lost, shutdown, timeout)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


LOST = "lost"
SHUTDOWN = "shutdown"
TIMEOUT = "timeout"


@dataclass
class JobContext:
    claim: Claim
    queue: JobQueue
    settings: Settings
    models: ModelCache
    shutdown: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        """Raise JobInterrupted when the job should stop now."""
        if self.lost.is_set():
            raise JobInterrupted(LOST, "the job was cancelled or claimed by another worker")
        if self.shutdown.is_set():
            raise JobInterrupted(SHUTDOWN, "the worker is shutting down")
        if time.monotonic() - self.started > self.settings.jobs_max_seconds:
            raise JobInterrupted(
                TIMEOUT, f"the job ran longer than {self.settings.jobs_max_seconds:g}s"
            )

    def report(self, progress: float) -> None:
        """Record progress (0..1) and extend the lease; stop if the job is no longer ours."""
        if not self.queue.heartbeat(self.claim, progress):
            self.lost.set()
        self.check()
