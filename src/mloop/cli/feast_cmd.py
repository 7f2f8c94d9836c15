"""`mloop features feast-env | materialize | history | online`: Feast, run out of process.

Registered on the `mloop features` group (cli/main.py). Feast lives in its own venv
(MLOOP_FEAST_VENV); these commands run its CLI and scripts there, or call its feature server.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from mloop.cli.console import console
from mloop.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add the Feast commands to the `mloop features` group."""
    app.command("feast-env")(feast_env_cmd)
    app.command("materialize")(materialize)
    app.command("history")(history)
    app.command("online")(online)


def feast_env_cmd(
    path: Path | None = typer.Option(
        None, "--path", help="Where to make the venv (default MLOOP_FEAST_VENV)."
    ),
) -> None:
    """Make the virtual environment Feast runs in (feast 0.67 with Redis support).

    Example: mloop features feast-env --path .venv-tools/feast
    """
    from mloop.features import feast_env  # lazy: only this command group needs it

    venv = path or get_settings().feast_venv
    python = feast_env.make_env(venv)
    console.print(f"Feast environment ready: [bold]{python}[/]", highlight=False, soft_wrap=True)


def materialize(
    start: datetime | None = typer.Option(
        None, "--start", help="Start of the window (ISO time); omitted: incremental."
    ),
    end: datetime | None = typer.Option(None, "--end", help="End of the window (default now)."),
    repo: Path | None = typer.Option(None, "--repo", help="Feast repo (default MLOOP_FEAST_REPO)."),
) -> None:
    """Load feature values from the offline store into the online store (`feast materialize`).

    Example: mloop features materialize --start 2024-01-01T00:00:00 --end 2024-04-01T00:00:00
    """
    from mloop.features import feast_env  # lazy: only this command group needs it

    settings = get_settings()
    out = feast_env.materialize(settings.feast_venv, repo or settings.feast_repo, start, end)
    console.print(out.strip() or "materialized", highlight=False, soft_wrap=True)


def history(
    entities: Path = typer.Argument(..., help="Parquet/CSV: join keys, event_timestamp, label."),
    out: Path = typer.Option(..., "--out", "-o", help="Training frame to write (.csv/.parquet)."),
    contract: Path = typer.Option(
        Path("features.yaml"), "--contract", help="features.yaml with a `feast` section."
    ),
) -> None:
    """Write a point-in-time correct training frame from Feast's offline store.

    Example: mloop features history data/labels.parquet --out data/train.parquet
    """
    from mloop.data.io import write_table  # lazy: +0.3 s at CLI start-up
    from mloop.features.contract import FeatureContract  # lazy: pandera at CLI start-up
    from mloop.features.feast_history import historical_frame  # lazy: pandas at start-up

    frame = historical_frame(
        FeatureContract.load(contract), entities, venv=get_settings().feast_venv
    )
    path = write_table(frame, out)
    console.print(f"wrote [bold]{path}[/]: {len(frame):,} rows", highlight=False, soft_wrap=True)


def online(
    entities: Path = typer.Argument(..., help="Parquet/CSV of entity keys (join key columns)."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature rows to write (.csv/.parquet)."),
    chunk_rows: int = typer.Option(1000, "--chunk-rows", min=1, help="Entity rows per call."),
) -> None:
    """Fetch online features for an entity-key file in bulk, to score with batch-predict.

    One call to the Feast feature server per --chunk-rows rows.

    Example: mloop features online data/customers.csv --out data/score.parquet
    """
    from mloop.data.io import read_table, write_table  # lazy: +0.3 s at CLI start-up
    from mloop.features.feast_client import FeastSource, online_frame  # lazy: httpx

    source = FeastSource.from_settings(get_settings())
    frame = online_frame(source, read_table(entities), chunk_rows)
    path = write_table(frame, out)
    console.print(f"wrote [bold]{path}[/]: {len(frame):,} rows", highlight=False, soft_wrap=True)
