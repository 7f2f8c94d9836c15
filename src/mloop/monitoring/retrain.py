"""Retraining jobs: the action behind a drift or degradation alert.

`RetrainWorker.request` commits a `retrain_jobs` row before the alert webhook answers; a
background thread runs pending jobs one at a time: it reads the alerted version's training
config (the run's `config/params.yaml` artifact, else its `mloop.config` tag), trains it with
`mloop.pipeline` on `MLOOP_RETRAIN_DATA`, and points the alias `candidate` at the new version.
It never touches Production: the candidate goes through the normal promotion path. Jobs left
pending or running by a crash are resumed when the worker starts. One alert never starts two
jobs, and a model with a job already pending or running gets no second one.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update

from mloop.background import BackgroundQueue
from mloop.errors import MloopError, NotFoundError
from mloop.governance.governed import governed_registry
from mloop.registry.runs import run_record, version_run_id
from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings
from mloop.store import Database
from mloop.store.monitoring import RetrainJob

log = logging.getLogger("mloop.monitoring")

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
CANDIDATE_ALIAS = "candidate"


class RetrainWorker:
    """Durable retraining requests, run in one background thread of the server."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        train: Callable[..., Any] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self._train = train
        self._queue = self._new_queue()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def _new_queue(self) -> BackgroundQueue[int]:
        # unbounded in practice (jobs are committed rows); one job per call, no linger
        return BackgroundQueue(
            "mloop-retrain", self._run, max_items=1_000_000, batch=1, linger=0, start=False
        )

    # -- requests ----------------------------------------------------------------------------

    def request(
        self, model_name: str, model_version: str, reason: str, dedup_key: str
    ) -> tuple[dict[str, Any], bool]:
        """Commit a pending job (True) or return the job that already covers it (False)."""
        data = self.settings.retrain_data
        with self._lock, self.database.session() as session:
            existing = session.scalars(
                select(RetrainJob)
                .where(
                    (RetrainJob.dedup_key == dedup_key)
                    | (
                        (RetrainJob.model_name == model_name)
                        & RetrainJob.status.in_((PENDING, RUNNING))
                    )
                )
                .order_by(RetrainJob.id.desc())
            ).first()
            if existing is not None:
                return existing.to_dict(), False
            job = RetrainJob(
                status=PENDING,
                model_name=model_name,
                model_version=model_version,
                reason=reason,
                dedup_key=dedup_key[:255],
                data=data,
            )
            session.add(job)
            session.flush()
            out = job.to_dict()
        self._idle.clear()
        if not self._queue.put(out["id"]):  # stopped: the pending row waits for the next start
            self._idle.set()
        return out, True

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest jobs, newest first."""
        with self.database.session() as session:
            rows = session.scalars(select(RetrainJob).order_by(RetrainJob.id.desc()).limit(limit))
            return [row.to_dict() for row in rows]

    def get(self, job_id: int) -> dict[str, Any]:
        with self.database.session() as session:
            job = session.get(RetrainJob, job_id)
            if job is None:
                raise NotFoundError(f"no retraining job {job_id}")
            return job.to_dict()

    # -- the worker thread -------------------------------------------------------------------

    def start(self) -> None:
        """Resume jobs a crash left pending or running, then run new ones as they come."""
        if self._queue.running:
            return
        if self._queue.closed:
            self._queue = self._new_queue()
        with self.database.session() as session:
            stale = session.scalars(
                select(RetrainJob)
                .where(RetrainJob.status.in_((PENDING, RUNNING)))
                .order_by(RetrainJob.id)
            ).all()
            for job in stale:
                job.status = PENDING
            resumed = [job.id for job in stale]
        for job_id in resumed:
            self._idle.clear()
            self._queue.put(job_id)
        if resumed:
            log.info("resuming %d retraining job(s): %s", len(resumed), resumed)
        self._queue.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued job finished (tests, shutdown); False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the queued jobs (waiting `timeout`); a job cut short is resumed at the
        next start."""
        self._queue.close(timeout)

    def _run(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            try:
                self._execute(job_id)
            except Exception:  # a bug here must not kill the worker
                log.exception("retraining job %s crashed", job_id)
        if not len(self._queue):
            self._idle.set()

    def _execute(self, job_id: int) -> None:
        with self.database.session() as session:
            # An atomic claim: of several processes resuming the same job, one runs it.
            claimed = session.execute(
                update(RetrainJob)
                .where(RetrainJob.id == job_id, RetrainJob.status == PENDING)
                .values(status=RUNNING, started_at=datetime.now(UTC))
            ).rowcount
            if not claimed:
                return
            job = session.get(RetrainJob, job_id)
            name, version, data = job.model_name, job.model_version, job.data
        log.info("retraining %s/%s on %s (job %s)", name, version, data, job_id)
        try:
            new_version, run_id = self._retrain(job_id, name, version, data)
        except Exception as exc:
            message = exc.message if isinstance(exc, MloopError) else f"{type(exc).__name__}: {exc}"
            log.warning("retraining job %s failed: %s", job_id, message)
            self._finish(job_id, FAILED, error=message)
            return
        self._finish(job_id, SUCCEEDED, new_version=new_version, run_id=run_id)

    def _finish(self, job_id: int, status: str, **values: Any) -> None:
        with self.database.session() as session:
            job = session.get(RetrainJob, job_id)
            job.status, job.finished_at = status, datetime.now(UTC)
            for key, value in values.items():
                setattr(job, key, value)

    def _retrain(self, job_id: int, name: str, version: str, data: str) -> tuple[str, str]:
        """Train the version's config on `data`; the new version gets the `candidate` alias."""
        # lazy: mloop.pipeline.train imports mlflow (+1.2 s); the server starts without it
        from mloop.pipeline.train import train

        if not data:
            raise MloopError(
                "MLOOP_RETRAIN_DATA is not set", hint="point it at the CSV/Parquet to retrain on"
            )
        if not Path(data).is_file():
            raise NotFoundError(f"retraining data {data!r} does not exist")
        configure_mlflow(self.settings)
        config = training_config(self.settings, name, version)
        registry = governed_registry(self.settings)  # the registration is audited
        result = (self._train or train)(
            Path(data), config, name=name, settings=self.settings, registry=registry
        )
        if not result.registered:
            failed = ", ".join(c.describe() for c in result.failed_criteria)
            raise MloopError(f"the retrained model did not meet its criteria: {failed}")
        registry.set_alias(name, CANDIDATE_ALIAS, result.version)
        registry.set_tags(
            name,
            result.version,
            {"mloop.retrained_from": version, "mloop.retrain_job": str(job_id)},
        )
        log.info("retraining job %s registered %s/%s as candidate", job_id, name, result.version)
        return str(result.version), result.run_id


def training_config(settings: Settings, name: str, version: str):
    """The TrainConfig a registered version was trained with (artifact, else run tag)."""
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    # lazy: +30 ms at server start-up (mloop.pipeline, sklearn.compose), only when retraining
    from mloop.pipeline.config import config_from_dict, load_config

    try:
        run_id = version_run_id(settings, name, version)
    except NotFoundError as exc:
        raise NotFoundError(f"model {name}/{version} is not registered") from exc
    if not run_id:
        raise NotFoundError(f"model {name}/{version} has no training run to take the config from")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config/params.yaml", dst_path=folder
            )
            return load_config(path)
    except (mlflow.exceptions.MlflowException, OSError):
        pass
    run = run_record(settings, run_id)
    text = run.tags.get("mloop.config") if run else None
    if not text:
        raise NotFoundError(
            f"run {run_id} of {name}/{version} has no config/params.yaml and no mloop.config tag",
            hint="retraining needs a model trained by `mloop train`",
        )
    return config_from_dict(yaml.safe_load(text) or {}, source=f"run {run_id} mloop.config")
