"""The composition root: one `Platform` per process (or CLI command), built from `Settings`.

    platform = Platform(settings)
    app = platform.server_app("churn@production")   # mloop serve
    worker = platform.worker(concurrency=2)         # mloop worker
    platform.approvals.submit(...)                  # CLI commands
    platform.close()

Everything the server, the job worker and the CLI need is built here once, on first use (so a
command pays only for what it uses), and handed down: the platform database (engine,
sessions, migrations), the governed model registry, the audit chain and the API-call audit
writer, and the services (approvals, deployments, the job queue). Lower layers never reach
up for these; they receive them.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mloop.settings import Settings, get_settings

# lazy: each service imports its own stack (the ORM, MLflow, scikit-learn, FastAPI) when first
# built, so `mloop serve`'s supervisor, which only migrates the database and starts the
# workers, does not import what each worker imports again (benchmarks/startup.py)
if TYPE_CHECKING:
    from mloop.deploy.service import DeploymentService
    from mloop.governance.approvals import ApprovalService
    from mloop.governance.audit import AuditLog
    from mloop.governance.audit_writer import AuditWriter
    from mloop.jobs.queue import JobQueue
    from mloop.jobs.worker import Worker
    from mloop.registry.service import Registry
    from mloop.serving.fastpath import ServingApp
    from mloop.store import Database


class Platform:
    """The platform's long-lived objects for one set of settings, each built once."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    @cached_property
    def database(self) -> Database:
        """The platform database, migrated to the newest schema."""
        from mloop.store import open_database  # lazy: see the imports

        return open_database(self.settings)

    @cached_property
    def registry(self) -> Registry:
        """The model registry with governance's promotion guard (policies, approvals, audit)."""
        from mloop.governance.governed import governed_registry  # lazy: see the imports

        return governed_registry(self.settings)

    @cached_property
    def audit(self) -> AuditLog:
        """The tamper-evident audit chain."""
        from mloop.governance.audit import audit_log  # lazy: see the imports

        return audit_log(self.settings)

    @cached_property
    def audit_writer(self) -> AuditWriter:
        """The background writer of API-call audit rows (closed by `close()`)."""
        from mloop.governance.audit_writer import AuditWriter  # lazy: see the imports
        from mloop.spool import spool_directory

        spool = spool_directory(self.settings.home, self.audit.database.url, "audit")
        return AuditWriter(self.audit, spool_dir=spool)

    @cached_property
    def approvals(self) -> ApprovalService:
        from mloop.governance.approvals import ApprovalService  # lazy: see the imports

        return ApprovalService(self.settings)

    @cached_property
    def deployments(self) -> DeploymentService:
        from mloop.deploy.service import DeploymentService  # lazy: see the imports

        return DeploymentService(self.settings, self.registry)

    @cached_property
    def jobs(self) -> JobQueue:
        """The async job queue in the platform database."""
        from mloop.jobs.queue import JobQueue  # lazy: see the imports

        return JobQueue.from_settings(self.settings)

    def worker(self, *, concurrency: int | None = None, name: str = "worker") -> Worker:
        """A job worker on this platform's queue (`mloop worker`)."""
        from mloop.jobs.worker import Worker  # lazy: see the imports

        return Worker(self.jobs, self.settings, concurrency=concurrency, name=name)

    def server_app(self, model_ref: str | None = None, **options: Any) -> ServingApp:
        """The model server app on this platform's database and services (`mloop serve`)."""
        from mloop.serving.app import create_app  # lazy: see the imports

        return create_app(
            model_ref,
            self.settings,
            database=self.database,
            approvals=self.approvals,
            deployments=self.deployments,
            audit_writer=self.audit_writer if self.settings.audit_api_calls else None,
            job_queue=self.jobs,
            **options,
        )

    def close(self) -> None:
        """Drain the audit writer and release the database's pooled connections."""
        writer = self.__dict__.pop("audit_writer", None)
        if writer is not None:
            writer.close()
        database = self.__dict__.get("database")
        if database is not None:
            database.engine.dispose()  # pooled connections; the engine reconnects if used

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_worker_app() -> ServingApp:
    """The app factory of one `mloop serve --workers N` process (uvicorn `--factory`): tunes
    that process's GC (and freezes the heap after each model load), then serves
    MLOOP_SERVE_MODEL (unset: the default deployment)."""
    from mloop.serving.app import MODEL_ENV  # lazy: see the imports
    from mloop.serving.server import tune_gc  # lazy: see the imports

    tune_gc()
    return Platform().server_app(
        os.environ.get(MODEL_ENV) or None, freeze_heap=True, settle_before_serving=True
    )
