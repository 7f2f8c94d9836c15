"""`mloop config`: the effective settings and where each value came from."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.settings import Settings


def config(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the effective configuration and the source of each value.

    Example: MLOOP_PORT=9000 mloop config
    """
    settings = Settings()
    values = settings.model_dump(mode="json")
    sources = settings.sources()
    if as_json:
        typer.echo(json.dumps({k: {"value": v, "source": sources[k]} for k, v in values.items()}))
        return
    table = Table(title="mloop configuration")
    table.add_column("setting")
    table.add_column("variable")
    table.add_column("value")
    table.add_column("source")
    for name, value in values.items():
        table.add_row(name, f"MLOOP_{name.upper()}", str(value), sources[name])
    console.print(table)
