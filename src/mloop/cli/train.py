"""`mloop train`: run the config-driven training pipeline and report metrics and criteria."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import typer
from rich.table import Table

from mloop.cli.console import console, step_progress
from mloop.errors import ConfigError, CriteriaNotMetError, NotFoundError
from mloop.settings import get_settings

PROJECT_CONFIG = "params.yaml"  # read from the working directory when --config is omitted


def train(
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Training table: .csv, .parquet or .pq; the config's data.path when omitted.",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="params.yaml; ./params.yaml when there is one, else the built-in defaults.",
    ),
    name: str | None = typer.Option(
        None, "--name", "-n", help="Registered model name (overrides register.name)."
    ),
    change: str = typer.Option(
        "minor",
        "--change",
        help="Semantic version bump of the registered version: major, minor or patch.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print only the report as JSON (run id, version, metrics, each gate's verdict).",
    ),
    metrics_file: Path | None = typer.Option(
        None, "--metrics-file", help="Also write the JSON report to this file (for CI steps)."
    ),
) -> None:
    """Train, evaluate and log a model; register it when the config's criteria pass.

    The exit code says whether the gates passed: 0 registered, 5 a criterion failed.

    Example: mloop train --data data/churn.csv --config examples/params.yaml --change patch

    Example: mloop train --data data/churn.csv --json --metrics-file train.json

    Example: cd my-project && mloop train   (a project of `mloop init`: ./params.yaml)
    """
    from mloop.data.io import table_format  # lazy: +0.3 s at CLI start-up
    from mloop.governance.governed import governed_registry  # lazy: +0.5 s at CLI start-up
    from mloop.pipeline.config import load_config  # lazy: +1.7 s at CLI start-up
    from mloop.pipeline.evaluate import describe_failures  # lazy: +1.6 s at CLI start-up
    from mloop.pipeline.train import STEPS  # lazy: +2.2 s at CLI start-up
    from mloop.pipeline.train import train as run_training  # lazy: +2.2 s at CLI start-up
    from mloop.registry.semver import check_change  # lazy: +1.2 ms at CLI start-up

    change = check_change(change)
    if config is None and Path(PROJECT_CONFIG).is_file():
        config = Path(PROJECT_CONFIG)
    cfg = load_config(config)
    data = data or config_data(cfg, config)
    table_format(data)
    if not data.exists():
        raise NotFoundError(f"data file {str(data)!r} does not exist")
    if metrics_file is not None and not metrics_file.parent.is_dir():
        raise ConfigError(f"the folder of --metrics-file {str(metrics_file)!r} does not exist")
    registry = governed_registry(get_settings())  # the registration is audited
    if as_json:  # stdout carries the JSON only: anything a library prints goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            result = run_training(data, cfg, name=name, change=change, registry=registry)
    else:
        with step_progress() as progress:
            task = progress.add_task("starting", total=len(STEPS))
            done = {"n": 0}

            def on_step(step: str) -> None:
                progress.update(task, description=step, completed=done["n"])
                done["n"] += 1

            result = run_training(
                data, cfg, name=name, on_step=on_step, change=change, registry=registry
            )
            progress.update(task, description="done", completed=len(STEPS))

    report = json.dumps(train_report(result), indent=2, sort_keys=True)
    if metrics_file is not None:
        metrics_file.write_text(report + "\n", encoding="utf-8")
    if as_json:
        sys.stdout.write(report + "\n")
        sys.stdout.flush()
        if not result.registered:
            raise CriteriaNotMetError(describe_failures(result.criteria))
        return
    console.print(_metrics_table(result.metrics))
    if result.criteria:
        console.print(_criteria_table(result))
    console.print(f"run id: [bold]{result.run_id}[/]", highlight=False)
    if not result.registered:
        raise CriteriaNotMetError(
            describe_failures(result.criteria),
            hint="inspect the run in MLflow, adjust the model or data, and train again",
        )
    console.print(f"registered: [bold green]{result.ref}[/]", highlight=False)


def config_data(cfg, config: Path | None) -> Path:
    """The config's `data.path`, relative to the config file; ConfigError when there is none."""
    if cfg.data.path is None:
        where = f"{config} has no data.path" if config else "no ./params.yaml names data.path"
        raise ConfigError(
            f"no training data: --data is not given and {where}",
            hint="mloop train --data data/train.csv, or set data.path in params.yaml",
        )
    return (config.parent if config else Path()) / cfg.data.path


def train_report(result) -> dict:
    """What CI steps read: run id, registered version, metrics and each gate's verdict."""
    return {
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "model_name": result.model_name,
        "version": result.version,
        "model_uri": result.model_uri,
        "registered": result.registered,
        "passed": all(c.passed for c in result.criteria),
        "metrics": {k: _finite(v) for k, v in result.metrics.items()},
        "gates": [
            {
                "metric": c.metric,
                "threshold": _finite(c.threshold),
                "actual": _finite(c.actual),
                "margin": _finite(c.margin),
                "passed": c.passed,
            }
            for c in result.criteria
        ],
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _metrics_table(metrics: dict[str, float]) -> Table:
    table = Table(title="held-out metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    return table


def _criteria_table(result) -> Table:
    table = Table(title=f"registration criteria for {result.model_name}")
    table.add_column("metric")
    table.add_column("threshold", justify="right")
    table.add_column("actual", justify="right")
    table.add_column("margin", justify="right")
    table.add_column("result")
    for c in result.criteria:
        verdict = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        table.add_row(
            c.metric, f"{c.threshold:.4f}", f"{c.actual:.4f}", f"{c.margin:+.4f}", verdict
        )
    return table
