"""The options shared by the export commands (`mloop audit export`, `mloop predictions export`)."""

from __future__ import annotations

import typer

SINCE = typer.Option(
    None, "--since", help="From this time: ISO date/time (2026-01-31) or age (12h, 7d)."
)
UNTIL = typer.Option(
    None, "--until", help="Before this time: ISO date/time or age (1d: up to a day ago)."
)
OUT = typer.Option(
    None, "--out", "-o", help="File (.jsonl or .parquet); stdout (JSON Lines) when omitted."
)
FORMAT = typer.Option(
    None, "--format", help="jsonl or parquet; from the --out extension when omitted."
)
