"""`mloop optimize NAME/VERSION`: compile a scikit-learn model to ONNX, check, register."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mloop.cli.console import console, step_progress
from mloop.settings import get_settings

_STAGES = {"load": "loading the model", "convert": "converting to ONNX (skl2onnx)"}
_STAGES |= {"parity": "checking parity on held-out rows", "register": "registering the version"}


def optimize(
    model_ref: str = typer.Argument(..., help="Model to compile: NAME/VERSION or NAME@ALIAS."),
    data: Path | None = typer.Option(
        None, "--data", help="Held-out rows (CSV/Parquet) for the parity check [logged example]."
    ),
    rows: int = typer.Option(2000, "--rows", min=1, help="Most rows of --data to check."),
    tolerance: float = typer.Option(
        1e-5, "--tolerance", min=0.0, help="Largest allowed probability difference."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a registered scikit-learn model to ONNX and register it as a new version.

    The ONNX model must give the same labels and probabilities within --tolerance on held-out
    rows; it is then registered under the same name, tagged mloop.optimized_from, and
    `mloop serve NAME/NEW_VERSION` runs it with onnxruntime. A step skl2onnx cannot convert is
    named in the error, and nothing is registered.

    Example: mloop optimize churn/1 --data holdout.csv
    """
    from mloop.optimize import optimize as run  # lazy: +0.5 s at CLI start-up

    settings = get_settings()
    with step_progress() as progress:
        task = progress.add_task("starting", total=len(_STAGES))

        def step(name: str) -> None:
            progress.update(task, description=_STAGES.get(name, name), advance=1)

        result = run(model_ref, settings, data=data, rows=rows, tolerance=tolerance, progress=step)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    console.print(
        f"[bold]{result.name}/{result.version}[/] is the ONNX build of "
        f"{result.name}/{result.source_version}",
        highlight=False,
    )
    console.print(
        f"  parity on {result.rows_checked} rows: labels equal, largest probability "
        f"difference {result.max_abs_diff:.2g} (tolerance {result.tolerance:g})",
        highlight=False,
    )
    console.print(f"  serve it: mloop serve {result.name}/{result.version}", highlight=False)
