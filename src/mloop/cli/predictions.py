"""`mloop predictions export`: the prediction log as JSON Lines or Parquet."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import typer

from mloop.cli import export_options
from mloop.cli.console import err_console
from mloop.cli.identity import authorized
from mloop.settings import get_settings

app = typer.Typer(
    help="The prediction log (what each version answered, with its inputs).\n\n"
    "Example: mloop predictions export --since 7d --out predictions.parquet",
    no_args_is_help=True,
)


@app.command("export")
def export(
    since: str | None = export_options.SINCE,
    until: str | None = export_options.UNTIL,
    model: str | None = typer.Option(
        None, "--model", help="Only this model, or one version: churn, churn/3."
    ),
    out: Path | None = export_options.OUT,
    fmt: str | None = export_options.FORMAT,
    as_user: str | None = typer.Option(
        None, "--as", help="Act as this identity (compliance) [MLOOP_USER]."
    ),
) -> None:
    """Write logged predictions (id, time, model, version, inputs, prediction, latency).

    Example: mloop predictions export --model churn/3 --since 2026-01-01 --out p.parquet
    """
    from mloop.data.rows import export_format, write_rows  # lazy: pyarrow, +0.2 s
    from mloop.governance.timeparse import parse_since  # lazy: +0.8 ms at CLI start-up
    from mloop.monitoring.export import COLUMNS, prediction_rows  # lazy: SQLAlchemy
    from mloop.store import open_database  # lazy: +0.3 s at CLI start-up

    kind = export_format(out, fmt)
    start = _moment(parse_since(since, "--since")) if since else None
    end = _moment(parse_since(until, "--until")) if until else None
    name, _, version = (model or "").partition("/")
    authorized(as_user, "PREDICTION_EXPORT")
    rows = prediction_rows(
        open_database(get_settings()),
        since=start,
        until=end,
        model=name or None,
        version=version or None,
    )
    count = write_rows(rows, out, kind, COLUMNS, sys.stdout)
    if out is not None:
        err_console.print(f"wrote {count} predictions to {out} ({kind})", highlight=False)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
