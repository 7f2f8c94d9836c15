"""`mloop audit verify|export`: check the HMAC chain (from its checkpoint), export the rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from mloop.cli import export_options
from mloop.cli.console import console, err_console
from mloop.cli.identity import authorized
from mloop.settings import get_settings

app = typer.Typer(
    help="The tamper-evident audit trail (HMAC-SHA256 chain in the platform database).\n\n"
    "Example: mloop audit verify",
    no_args_is_help=True,
)


AS_OPTION = typer.Option(None, "--as", help="Act as this identity (compliance) [MLOOP_USER].")


def _log(as_user: str | None, action: str):
    """The audit log, once the acting identity may do `action` (as over REST: compliance)."""
    from mloop.governance.audit import audit_log  # lazy: +0.3 s at CLI start-up

    authorized(as_user, action)
    return audit_log(get_settings())


@app.command("verify")
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    as_user: str | None = AS_OPTION,
) -> None:
    """Recompute the whole chain; name the first modified, deleted or reordered row.

    After retention pruned old rows (`mloop retention apply`), the chain is checked from the
    newest signed checkpoint: its signature, then every row after it; the report says which
    rows the checkpoint vouches for and which were verified one by one. Exits 10 when the
    chain or a checkpoint is broken. Keep the printed head MAC somewhere else to detect a
    truncated tail later.

    Example: mloop audit verify
    """
    from mloop.governance.checkpoints import audit_key, verify  # lazy: +0.3 s at CLI start-up

    log = _log(as_user, "AUDIT_VERIFY")
    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("verify", total=None)
        report = verify(
            log.database,
            audit_key(get_settings()),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    elif report.ok:
        console.print(f"[green]ok[/] {report.message}")
        console.print(f"head MAC {report.head_mac or '(empty chain)'}", highlight=False)
    else:
        err_console.print(f"[bold red]broken:[/] {report.message}", highlight=False)
    if not report.ok:
        raise typer.Exit(10)


@app.command("export")
def export(
    since: str | None = export_options.SINCE,
    until: str | None = export_options.UNTIL,
    action: str | None = typer.Option(None, "--action", help="Only this action (model.promote)."),
    out: Path | None = export_options.OUT,
    fmt: str | None = export_options.FORMAT,
    as_user: str | None = AS_OPTION,
) -> None:
    """Write audit rows as JSON Lines or Parquet (seq, time, actor, action, target, detail, MACs).

    Example: mloop audit export --since 7d --out audit.jsonl
    """
    from mloop.data.rows import export_format, write_rows  # lazy: pyarrow, +0.2 s
    from mloop.governance.timeparse import parse_since  # lazy: +0.8 ms at CLI start-up

    kind = export_format(out, fmt)
    start = parse_since(since, "--since") if since else None
    end = parse_since(until, "--until") if until else None
    log = _log(as_user, "AUDIT_EXPORT")
    rows = (row for row in log.rows(start, action) if end is None or row["created_at"] < end)
    count = write_rows(rows, out, kind, AUDIT_COLUMNS, sys.stdout)
    if out is not None:
        err_console.print(f"wrote {count} rows to {out} ({kind})", highlight=False)


# Parquet schema of an audit export (data/rows.py): the detail as JSON text.
AUDIT_COLUMNS = {
    "seq": "int",
    "created_at": "time",
    "actor": "string",
    "action": "string",
    "target": "string",
    "detail": "json",
    "prev_mac": "string",
    "mac": "string",
}
