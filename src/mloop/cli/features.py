"""`mloop features`: write a first features.yaml from data, and check data against one."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.errors import ValidationError

app = typer.Typer(
    help=(
        "The feature contract (features.yaml): types, ranges, allowed values, where used.\n\n"
        "Example: mloop features infer data/churn.csv --target churn > features.yaml"
    ),
    no_args_is_help=True,
)


@app.command("infer")
def infer(
    data: Path = typer.Argument(..., help="A CSV or Parquet file to infer the contract from."),
    target: str | None = typer.Option(
        None, "--target", "-t", help="The label column (named, not declared as a feature)."
    ),
    entity_key: str | None = typer.Option(
        None, "--entity-key", help="The entity id column (Feast lookups), not a feature."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write to this file instead of standard output."
    ),
) -> None:
    """Print a first features.yaml: types, nulls, ranges from min/max, allowed categories.

    Review it before use: the ranges are the data's, not the domain's.

    Example: mloop features infer data/churn.csv --target churn > features.yaml
    """
    from mloop.data.io import read_table  # lazy: +0.3 s at CLI start-up
    from mloop.features.contract import FeatureContract  # lazy: pandas at CLI start-up

    contract = FeatureContract.infer(read_table(data), target=target, entity_key=entity_key)
    if out is not None:
        contract.dump(out)
        console.print(f"wrote [bold]{out}[/] ({len(contract.features)} features)", highlight=False)
    else:
        sys.stdout.write(contract.to_yaml())


@app.command("check")
def check(
    data: Path = typer.Argument(..., help="A CSV or Parquet file to check."),
    contract_path: Path = typer.Option(
        Path("features.yaml"), "--contract", "-c", help="The contract to check against."
    ),
    report: Path | None = typer.Option(
        None, "--report", "-r", help="Also write validation.json and validation.html here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Validate a data file against features.yaml; exits non-zero when any check errs.

    Runs the checks training runs first: declared columns, types, nulls, ranges, allowed
    values, constant columns, duplicate rows, and, when the file has the target column,
    label balance and label leakage.

    Example: mloop features check data/churn.csv --contract features.yaml --report reports/
    """
    from mloop.data.io import read_table  # lazy: +0.3 s at CLI start-up
    from mloop.features.contract import FeatureContract  # lazy: pandas at CLI start-up
    from mloop.features.validation import validate_frame  # lazy: pandas and sklearn

    contract = FeatureContract.load(contract_path)
    result = validate_frame(read_table(data), contract, source=str(data), require_target=False)
    if report is not None:
        result.write(report)
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        console.print(report_table(result))
        console.print(result.summary(), highlight=False)
        if result.path is not None:
            console.print(f"report: {result.path}", highlight=False)
    if not result.ok:
        first = result.errors[0]
        raise ValidationError(
            f"{data} does not fit {contract_path}: {first.message} ({len(result.errors)} error(s))",
            hint="fix the data, or the contract if the data is right",
        )


def report_table(result) -> Table:
    """One row per failing check (level, check, column, count, message, first example row)."""
    table = Table(title=f"validation of {result.source}")
    for name in ("level", "check", "column", "count", "message", "example"):
        table.add_column(name, no_wrap=name in ("level", "count"))
    if not result.failures:
        table.add_row("ok", "all", "", "0", "every check passed", "")
    for r in result.failures:
        style = "bold red" if r.level == "error" else "yellow"
        example = r.examples[0] if r.examples else {}
        shown = f"data row {example['data_row']}" if "data_row" in example else ""
        if r.column and r.column in example:
            shown += f": {r.column}={example[r.column]!r}"
        table.add_row(
            f"[{style}]{r.level}[/]", r.check, r.column or "", str(r.count), r.message, shown
        )
    return table
