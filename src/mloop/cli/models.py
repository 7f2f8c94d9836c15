"""Stub: replaced by the real command group."""

import typer

app = typer.Typer(help="(not yet implemented)")
