"""`mloop worker`: a job worker process next to (or far from) the servers."""

from __future__ import annotations

import signal
import threading

import typer

from mloop import logs
from mloop.cli.console import console, err_console


def worker(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        max=64,
        help="Jobs run at once [MLOOP_JOBS_WORKER_CONCURRENCY].",
    ),
    burst: bool = typer.Option(
        False, "--burst", help="Run the jobs that are due, then exit (cron, CI, tests)."
    ),
) -> None:
    """Run queued async jobs from the platform database until stopped (Ctrl-C).

    Any number of workers (and servers with their embedded worker) can share one database:
    each job is claimed with a lease, and a job whose worker dies is picked up again.
    With MLOOP_JOBS_BACKEND=celery, run `celery -A mloop.jobs.celery worker` instead.

    Example: mloop worker --concurrency 2
    """
    from mloop.cli.platform import command_platform  # start-up cost: only when run

    platform = command_platform()
    settings, queue = platform.settings, platform.jobs
    logs.configure(settings.log_format, settings.log_level)  # MLOOP_LOG_FORMAT=json|text
    runner = platform.worker(concurrency=concurrency, name="worker")
    if settings.jobs_backend == "celery":
        err_console.print(
            "[yellow]note:[/] MLOOP_JOBS_BACKEND=celery: jobs are sent to Celery; this worker "
            "only picks up those that are due in the database",
            highlight=False,
        )
    if burst:
        outcomes = runner.run_until_idle()
        done = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "no jobs were due"
        console.print(f"Worker finished: {done}", highlight=False)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    from mloop.governance.checkpoints import audit_key  # lazy: only a long-running worker
    from mloop.governance.retention import RetentionTimer, policies  # lazy: as above

    retention = RetentionTimer(  # MLOOP_RETENTION_*: applied here, not in every server worker
        queue.database,
        audit_key(settings),
        policies(settings),
        settings.retention_interval_seconds,
        audit=platform.audit,
    ).start()
    console.print(
        f"Worker running {runner.concurrency} job(s) at a time on {queue.database.safe_url} "
        "(Ctrl-C stops; running jobs go back to the queue)",
        highlight=False,
    )
    while not stop.wait(0.5):
        pass
    retention.stop()
    runner.stop()
    console.print(f"Worker stopped: {runner.outcomes}", highlight=False)
