"""The durable job queue: the `jobs` table and the only code that changes a job's state.

Every transition is one conditional UPDATE (compare-and-set on status and lease token), so it is
atomic on SQLite and PostgreSQL alike and safe with any number of workers:

    queued ──claim──► running ──complete──► succeeded
      ▲                 │ │ └──fail (no attempts left, or not retryable)──► failed
      └─fail (retry, ───┘ └──lease expired──► claimed again (attempt + 1)
        after backoff)     cancel (queued or running) ──► cancelled

A claim takes a lease (`lease_seconds`) that heartbeats extend. A worker that dies stops
heartbeating, its lease expires and another worker claims the job again. Each claim gets a new
`lease_token`; completion needs the current token, so a job is completed once even when a
worker thought dead comes back and finishes too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.settings import Settings
from mloop.store import open_database
from mloop.store.db import Database
from mloop.store.jobs import JobRecord

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
MAX_BACKOFF_SECONDS = 600.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time mloop stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Job:
    """A snapshot of one job row."""

    id: str
    kind: str
    status: str
    backend: str
    model_uri: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    progress: float
    rows: int
    attempts: int
    max_attempts: int
    claimed_by: str | None
    lease_token: str | None
    lease_expires_at: datetime | None
    run_after: datetime
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    published_at: datetime | None

    @classmethod
    def from_record(cls, record: JobRecord) -> Job:
        return cls(
            id=record.id,
            kind=record.kind,
            status=record.status,
            backend=record.backend,
            model_uri=record.model_uri,
            payload=record.payload,
            result=record.result,
            error=record.error,
            progress=record.progress,
            rows=record.rows,
            attempts=record.attempts,
            max_attempts=record.max_attempts,
            claimed_by=record.claimed_by,
            lease_token=record.lease_token,
            lease_expires_at=_aware(record.lease_expires_at),
            run_after=_aware(record.run_after),
            created_at=_aware(record.created_at),
            updated_at=_aware(record.updated_at),
            started_at=_aware(record.started_at),
            finished_at=_aware(record.finished_at),
            published_at=_aware(record.published_at),
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self, *, result: bool = True) -> dict[str, Any]:
        """What `GET /jobs/{id}` and `mloop jobs show --json` report."""
        body: dict[str, Any] = {
            "job_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": round(self.progress, 4),
            "rows": self.rows,
            "model_uri": self.model_uri,
            "backend": self.backend,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "error": self.error,
            "worker": self.claimed_by,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": _iso(self.updated_at),
        }
        if self.status == QUEUED and self.attempts:
            body["retry_at"] = _iso(self.run_after)
        if result:
            body["result"] = self.result
        return body


@dataclass(frozen=True)
class Claim:
    """A job held by one worker under one lease token."""

    job: Job
    token: str
    worker: str


class JobQueue:
    """Submit, claim, heartbeat, complete, fail and cancel jobs in the platform database."""

    def __init__(
        self,
        database: Database,
        *,
        lease_seconds: float = 30.0,
        backoff_seconds: float = 2.0,
        max_attempts: int = 3,
    ) -> None:
        self.database = database
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff_seconds = backoff_seconds
        self.max_attempts = max_attempts

    @classmethod
    def from_settings(cls, settings: Settings) -> JobQueue:
        return cls(
            open_database(settings),
            lease_seconds=settings.jobs_lease_seconds,
            backoff_seconds=settings.jobs_retry_backoff_seconds,
            max_attempts=settings.jobs_max_attempts,
        )

    # -- submitting and reading ------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        model_uri: str | None = None,
        rows: int = 0,
        backend: str = "local",
        max_attempts: int | None = None,
    ) -> Job:
        """Commit a new queued job and return it (committed before this returns)."""
        now = utcnow()
        record = JobRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            status=QUEUED,
            backend=backend,
            model_uri=model_uri,
            payload=payload,
            progress=0.0,
            rows=rows,
            attempts=0,
            max_attempts=max_attempts or self.max_attempts,
            run_after=now,
            created_at=now,
            updated_at=now,
        )
        with self.database.session() as session:
            session.add(record)
        return Job.from_record(record)

    def get(self, job_id: str) -> Job:
        """One job; NotFoundError when there is no such id."""
        with self.database.session() as session:
            record = session.get(JobRecord, job_id)
            if record is None:
                raise NotFoundError(
                    f"no job {job_id!r}", hint="`mloop jobs list` shows the recent jobs"
                )
            return Job.from_record(record)

    def list(self, *, status: str | None = None, limit: int = 50) -> list[Job]:
        """The newest jobs first, optionally only those with `status`."""
        if status is not None and status not in STATUSES:
            raise ValidationError(
                f"unknown job status {status!r}", hint=f"use one of {', '.join(STATUSES)}"
            )
        query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(JobRecord.status == status)
        with self.database.session() as session:
            return [Job.from_record(r) for r in session.scalars(query)]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        query = select(JobRecord.status, func.count()).group_by(JobRecord.status)
        with self.database.session() as session:
            found = dict(session.execute(query).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; ConflictError when it already finished."""
        job = self.get(job_id)
        if not job.finished:
            now = utcnow()
            self._update(
                and_(JobRecord.id == job_id, JobRecord.status.in_((QUEUED, RUNNING))),
                status=CANCELLED,
                finished_at=now,
                updated_at=now,
                error="cancelled",
            )
            job = self.get(job_id)
        if job.status != CANCELLED:
            raise ConflictError(f"job {job_id} already {job.status}; it cannot be cancelled")
        return job

    # -- workers -----------------------------------------------------------------------------------

    def claim(
        self, worker: str, *, job_id: str | None = None, kinds: tuple[str, ...] | None = None
    ) -> Claim | None:
        """Take the next due job (or `job_id`) under a fresh lease; None when there is none.

        Due: queued with `run_after` passed, or running with an expired lease (its worker is
        gone). An expired job that used its last attempt is failed instead of claimed.
        """
        now = utcnow()
        query = (
            select(JobRecord.id, JobRecord.status, JobRecord.lease_token, JobRecord.attempts)
            .add_columns(JobRecord.max_attempts)
            .where(
                or_(
                    and_(JobRecord.status == QUEUED, JobRecord.run_after <= now),
                    and_(JobRecord.status == RUNNING, JobRecord.lease_expires_at < now),
                )
            )
            .order_by(JobRecord.run_after, JobRecord.created_at)
            .limit(8)
        )
        if job_id is not None:
            query = query.where(JobRecord.id == job_id)
        if kinds:
            query = query.where(JobRecord.kind.in_(kinds))
        if self.database.is_sqlite:
            # Read, then compare-and-set each candidate in its own short write transaction.
            with self.database.session() as session:
                candidates = session.execute(query).all()
            for candidate in candidates:
                with self.database.session() as session:
                    claim = self._take(session, candidate, worker, now)
                if claim is not None:
                    return claim
            return None
        with self.database.session() as session:  # PostgreSQL: lock rows others skip
            candidates = session.execute(query.with_for_update(skip_locked=True)).all()
            for candidate in candidates:
                claim = self._take(session, candidate, worker, now)
                if claim is not None:
                    return claim
        return None

    def _take(self, session, candidate, worker: str, now: datetime) -> Claim | None:
        job_id, status, old_token, attempts, max_attempts = candidate
        same = and_(
            JobRecord.id == job_id,
            JobRecord.status == status,
            JobRecord.lease_token.is_(None)
            if old_token is None
            else JobRecord.lease_token == old_token,
        )
        if status == RUNNING and attempts >= max_attempts:
            session.execute(
                update(JobRecord)
                .where(same)
                .values(
                    status=FAILED,
                    finished_at=now,
                    updated_at=now,
                    error=f"worker lost on attempt {attempts} of {max_attempts} "
                    "(lease expired); no attempts left",
                )
            )
            return None
        token = str(uuid.uuid4())
        result = session.execute(
            update(JobRecord)
            .where(same)
            .execution_options(synchronize_session=False)
            .values(
                status=RUNNING,
                claimed_by=worker,
                lease_token=token,
                lease_expires_at=now + self.lease,
                attempts=JobRecord.attempts + 1,
                started_at=func.coalesce(JobRecord.started_at, now),
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            return None
        session.flush()
        record = session.get(JobRecord, job_id, populate_existing=True)
        return Claim(Job.from_record(record), token, worker)

    def heartbeat(self, claim: Claim, progress: float | None = None) -> bool:
        """Extend the lease (and record progress); False when the job is no longer ours."""
        now = utcnow()
        values: dict[str, Any] = {"lease_expires_at": now + self.lease, "updated_at": now}
        if progress is not None:
            values["progress"] = min(max(float(progress), 0.0), 1.0)
        return self._update(self._held(claim), **values)

    def complete(self, claim: Claim, result: dict[str, Any]) -> bool:
        """Write the result once; False (nothing written) when the lease was lost meanwhile."""
        now = utcnow()
        return self._update(
            self._held(claim),
            status=SUCCEEDED,
            result=result,
            progress=1.0,
            error=None,
            finished_at=now,
            updated_at=now,
            lease_expires_at=None,
        )

    def fail(self, claim: Claim, error: str, *, retry: bool = True) -> str | None:
        """Record a failed attempt: back to queued after a backoff, or failed for good.

        Returns the new status, or None when the job was no longer held by this claim.
        """
        now = utcnow()
        attempts = claim.job.attempts
        if retry and attempts < claim.job.max_attempts:
            delay = min(self.backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
            changed = self._update(
                self._held(claim),
                status=QUEUED,
                error=error,
                run_after=now + timedelta(seconds=delay),
                dispatched_at=None,
                lease_expires_at=None,
                lease_token=None,
                claimed_by=None,
                updated_at=now,
            )
            return QUEUED if changed else None
        changed = self._update(
            self._held(claim), status=FAILED, error=error, finished_at=now, updated_at=now
        )
        return FAILED if changed else None

    def release(self, claim: Claim) -> bool:
        """Hand a job back untouched (a worker shutting down): queued again, attempt refunded."""
        now = utcnow()
        return self._update(
            self._held(claim),
            status=QUEUED,
            attempts=JobRecord.attempts - 1,
            dispatched_at=None,
            lease_expires_at=None,
            lease_token=None,
            claimed_by=None,
            run_after=now,
            updated_at=now,
        )

    # -- dispatch and publication (servers) -------------------------------------------------------

    def due_for_dispatch(
        self, *, older_than: float, lost_after: float | None = None, limit: int = 100
    ) -> list[str]:
        """Ids a broker should be sent (again): due jobs never sent, and jobs whose worker is gone.

        A running job with an expired lease is sent again at most every `older_than` seconds.
        With `lost_after`, a due job sent that long ago and still unclaimed is sent again too: a
        broker that restarted empty lost its message (a duplicate delivery is a no-op).
        """
        now = utcnow()
        stale = now - timedelta(seconds=older_than)
        unsent = JobRecord.dispatched_at.is_(None)
        if lost_after is not None:
            lost = now - timedelta(seconds=lost_after)
            unsent = or_(unsent, JobRecord.dispatched_at < lost)
        query = (
            select(JobRecord.id)
            .where(
                or_(
                    and_(
                        JobRecord.status == QUEUED,
                        JobRecord.run_after <= now,
                        unsent,
                    ),
                    and_(
                        JobRecord.status == RUNNING,
                        JobRecord.lease_expires_at < now,
                        or_(JobRecord.dispatched_at.is_(None), JobRecord.dispatched_at < stale),
                    ),
                )
            )
            .order_by(JobRecord.run_after)
            .limit(limit)
        )
        with self.database.session() as session:
            return list(session.scalars(query))

    def mark_dispatched(self, job_id: str) -> None:
        self._update(JobRecord.id == job_id, dispatched_at=utcnow())

    def unpublished(self, model_uris: set[str], *, limit: int = 50) -> list[Job]:
        """Succeeded jobs of these models whose rows no server has published yet."""
        if not model_uris:
            return []
        query = (
            select(JobRecord)
            .where(
                JobRecord.status == SUCCEEDED,
                JobRecord.published_at.is_(None),
                JobRecord.model_uri.in_(sorted(model_uris)),
            )
            .order_by(JobRecord.finished_at)
            .limit(limit)
        )
        with self.database.session() as session:
            return [Job.from_record(r) for r in session.scalars(query)]

    def mark_published(self, job_id: str) -> bool:
        """Take the right to publish a job's rows; True for exactly one caller."""
        return self._update(
            and_(JobRecord.id == job_id, JobRecord.published_at.is_(None)),
            published_at=utcnow(),
        )

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _held(claim: Claim):
        return and_(
            JobRecord.id == claim.job.id,
            JobRecord.lease_token == claim.token,
            JobRecord.status == RUNNING,
        )

    def _update(self, where, **values: Any) -> bool:
        with self.database.session() as session:
            statement = update(JobRecord).where(where).values(**values)
            result = session.execute(statement.execution_options(synchronize_session=False))
            return result.rowcount == 1
