"""`mloop batch-predict MODEL_REF INPUT OUTPUT`: score files of any size in bounded memory."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mloop.cli.console import console, err_console
from mloop.settings import get_settings


class Engine(StrEnum):
    local = "local"
    ray = "ray"


class _RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:  # type: ignore[override]
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s")


def batch_predict(
    model_ref: str = typer.Argument(
        ..., help="Model: NAME@ALIAS (churn@production), NAME/VERSION or models:/..."
    ),
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="A CSV or Parquet file, or a folder of them."
    ),
    output: Path = typer.Argument(
        ...,
        metavar="OUTPUT",
        help="out.csv or out.parquet (one file), or a folder (Parquet parts).",
    ),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local, or ray (Ray Data)."),
    chunk_rows: int | None = typer.Option(
        None, "--chunk-rows", min=1, help="Rows per chunk [MLOOP_BATCH_CHUNK_ROWS]."
    ),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column copied to the output (default: `id` or `*_id`)."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard finished chunks (or an existing OUTPUT) and start over."
    ),
    concurrency: int = typer.Option(
        2, "--concurrency", min=1, help="Ray actors, each with the model loaded once."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to use (default: RAY_ADDRESS, else local Ray)."
    ),
    entities: bool = typer.Option(
        False,
        "--entities",
        help="INPUT holds entity keys: fetch each row's online features from Feast first "
        "[MLOOP_FEAST_URL, MLOOP_FEAST_FEATURES].",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every row of INPUT and write id, prediction, probability and model version.

    Streams in chunks (memory bounded by --chunk-rows), shows rows/s and time left, and writes
    rows that fail validation to a rejects file with the reason. Rerun the same command after
    an interruption: finished chunks are skipped.

    Example: mloop batch-predict churn@production customers.parquet scores.parquet

    Example: mloop batch-predict churn@production customer_ids.csv scores.parquet --entities
    """
    settings = get_settings()
    if entities:
        input_path = _fetch_features(input_path, output, restart)
    progress = Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
        _RowsPerSecond(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=as_json,
    )
    task = progress.add_task("scoring", total=0)

    def report(done: int, expected: int) -> None:
        if not progress.live.is_started:  # shown once scoring starts, not for early errors
            progress.start()
        progress.update(task, completed=done, total=expected)

    try:
        if engine is Engine.ray:
            # lazy: +0.4 s at CLI start-up, and ray is the optional extra mloop[ray]
            from mloop.jobs.ray import ray_batch_predict

            summary = ray_batch_predict(
                model_ref,
                input_path,
                output,
                settings=settings,
                chunk_rows=chunk_rows,
                id_column=id_column,
                restart=restart,
                concurrency=concurrency,
                address=ray_address,
                progress=report,
            )
        else:
            from mloop.jobs.batch import batch_predict as run  # lazy: +0.4 s at CLI start-up

            summary = run(
                model_ref,
                input_path,
                output,
                settings=settings,
                chunk_rows=chunk_rows,
                id_column=id_column,
                restart=restart,
                progress=report,
            )
        progress.update(task, completed=summary.rows, total=summary.rows)
    finally:
        progress.stop()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    console.print(
        f"[bold]Scored[/] {summary.scored:,} rows with {summary.model} version "
        f"{summary.model_version} ({summary.engine}) in {summary.seconds:,.1f}s",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  rows read   {summary.rows:,}", highlight=False, soft_wrap=True)
    console.print(f"  scored      {summary.scored:,}", highlight=False, soft_wrap=True)
    console.print(f"  rejected    {summary.rejected:,}", highlight=False, soft_wrap=True)
    if summary.chunks_skipped:
        console.print(
            f"  resumed     {summary.chunks_skipped} of {summary.chunks} chunks were already done",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  output      {summary.output}", highlight=False, soft_wrap=True)
    if summary.rejects:
        console.print(f"  rejects     {summary.rejects}", highlight=False, soft_wrap=True)


def _fetch_features(keys: Path, output: Path, restart: bool) -> Path:
    """The feature rows of an entity-key file, from Feast's online store in bulk, written
    beside OUTPUT once (a rerun scores the same rows, so finished chunks still count)."""
    # lazy: +0.3 s at CLI start-up, and httpx for the Feast client
    from mloop.data.io import read_table, write_table
    from mloop.features.feast_client import FeastSource, online_frame

    target = output.with_name(f"{output.stem}.features.parquet")  # for scores.parquet or scores/
    if target.exists() and not restart:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = online_frame(FeastSource.from_settings(get_settings()), read_table(keys))
    return write_table(frame, target)
