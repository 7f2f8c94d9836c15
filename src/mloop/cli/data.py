"""`mloop data`: example datasets for trying the loop end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from mloop.cli.console import console

app = typer.Typer(
    help="Generate example data.\n\nExample: mloop data churn --rows 5000 --out data/churn.csv",
    no_args_is_help=True,
)


@app.command("churn")
def churn(
    rows: int = typer.Option(5000, "--rows", "-n", min=1, help="Number of customers."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .csv, .parquet or .pq."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same seed gives the same file."),
    drift: bool = typer.Option(
        False, "--drift", help="Shift the distributions (for monitoring and drift tests)."
    ),
) -> None:
    """Write a synthetic customer-churn table (CSV or Parquet by extension).

    Example: mloop data churn --rows 5000 --out data/churn.csv --seed 7
    """
    from mloop.data.churn import generate_churn  # lazy: +0.4 s at CLI start-up
    from mloop.data.io import table_format, write_table  # lazy: +0.3 s at CLI start-up

    table_format(out)  # reject a bad extension before generating anything
    df = generate_churn(rows, seed=seed, drift=drift)
    path = write_table(df, out)
    kind = "drifted " if drift else ""
    console.print(f"wrote [bold]{path}[/]", highlight=False, soft_wrap=True)
    console.print(
        f"{len(df):,} {kind}rows x {len(df.columns)} columns, churn rate {df['churn'].mean():.1%}",
        highlight=False,
    )
