"""`mloop jobs list|show|cancel`: the async jobs in the platform database."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.cli.identity import authorized
from mloop.settings import get_settings

app = typer.Typer(
    help="Async jobs (POST /predict/async): list, inspect, cancel.\n\nExample: mloop jobs list",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _queue(action: str = "JOB_READ"):
    """The job queue, once the acting identity may do `action` (as over REST: predictor)."""
    from mloop.jobs.queue import JobQueue  # lazy: +0.2 s at CLI start-up

    authorized(None, action)
    return JobQueue.from_settings(get_settings())


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else ""


@app.command("list")
def list_jobs(
    status: str | None = typer.Option(
        None, "--status", help="Only jobs in this status: queued, running, succeeded, ..."
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="How many, newest first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the newest jobs with their status, progress and attempts.

    Example: mloop jobs list --status running
    """
    queue = _queue()
    jobs = queue.list(status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps([job.to_dict(result=False) for job in jobs], indent=2))
        return
    if not jobs:
        console.print("No jobs yet. Submit one with POST /predict/async.")
        return
    table = Table(title="Jobs (newest first)")
    for column in ("id", "kind", "status", "progress", "rows", "attempts", "model", "created"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for job in jobs:
        info = job.to_dict(result=False)
        table.add_row(
            job.id,
            job.kind,
            job.status,
            f"{job.progress:.0%}",
            str(job.rows),
            f"{job.attempts}/{job.max_attempts}",
            job.model_uri or "",
            _when(info["created_at"]),
        )
    console.print(table)
    counts = queue.counts()
    console.print("  ".join(f"{k} {v}" for k, v in counts.items() if v), highlight=False)


@app.command("show")
def show(
    job_id: str = typer.Argument(..., help="Job id (from POST /predict/async or jobs list)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one job: status, progress, attempts, error, and its result when it succeeded.

    Example: mloop jobs show 0b7c6f1e-... --json
    """
    job = _queue().get(job_id)
    info = job.to_dict()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in ("job_id", "kind", "status", "rows", "model_uri", "backend", "worker", "error"):
        grid.add_row(key, str(info[key]) if info[key] is not None else "-")
    grid.add_row("progress", f"{job.progress:.0%}")
    grid.add_row("attempts", f"{job.attempts} of {job.max_attempts}")
    for key in ("created_at", "started_at", "finished_at", "retry_at"):
        if info.get(key):
            grid.add_row(key.replace("_at", ""), _when(info[key]))
    console.print(grid)
    result = job.result
    if result:
        answers = result.get("predictions", [])
        console.print(
            f"[bold]result[/] {len(answers)} predictions from {result.get('model_name')} "
            f"version {result.get('model_version')}; first: "
            f"{json.dumps(answers[:3])}",
            highlight=False,
        )


@app.command("cancel")
def cancel(job_id: str = typer.Argument(..., help="Job id to cancel.")) -> None:
    """Cancel a queued or running job (a running one stops at its next chunk).

    Example: mloop jobs cancel 0b7c6f1e-...
    """
    job = _queue("JOB_CANCEL").cancel(job_id)
    console.print(f"Job {job.id} is {job.status}.")
