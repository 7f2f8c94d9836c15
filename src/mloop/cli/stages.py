"""`mloop prepare` and `mloop evaluate`: the DVC stages around `mloop train` (dvc.yaml of
`mloop init`): a held-out split to files, and a registered version scored on it."""

from __future__ import annotations

from pathlib import Path

import typer

from mloop.cli.console import console
from mloop.settings import get_settings

CONFIG_OPTION = typer.Option(Path("params.yaml"), "--config", "-c", help="The training config.")


def prepare(
    data: Path | None = typer.Argument(
        None, help="The table to split; the config's data.path when omitted."
    ),
    out: Path = typer.Option(Path("data/prepared"), "--out", "-o", help="Folder of the split."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Split a table into train.csv and test.csv as params.yaml's `preprocess` says.

    Example: mloop prepare data/sample.csv --out data/prepared
    """
    from mloop.cli.train import config_data  # lazy: with the pipeline below
    from mloop.pipeline.config import load_config  # lazy: +1.7 s at CLI start-up
    from mloop.pipeline.stages import prepare as split_table  # lazy: sklearn at start-up

    cfg = load_config(config)
    paths = split_table(data or config_data(cfg, config), cfg, out)
    console.print(f"wrote [bold]{paths['train']}[/] and [bold]{paths['test']}[/]", highlight=False)


def evaluate(
    report: Path = typer.Argument(..., help="The train report (mloop train --metrics-file)."),
    data: Path = typer.Argument(..., help="The held-out table to score."),
    metrics: Path = typer.Option(Path("metrics.json"), "--metrics", help="Metrics JSON file."),
    plots: Path = typer.Option(Path("plots"), "--plots", help="Folder of the CSV plots."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Score the version a train report names on held-out data: metrics.json and plots/*.csv.

    Plots (as `dvc plots show` reads them): roc.csv (fpr,tpr), precision_recall.csv
    (recall,precision) and confusion.csv (actual,predicted) for classifiers, predictions.csv
    (actual,predicted) for regression.

    Example: mloop evaluate train.json data/prepared/test.csv --metrics metrics.json
    """
    from mloop.pipeline.config import load_config  # lazy: +1.7 s at CLI start-up
    from mloop.pipeline.stages import evaluate as score  # lazy: sklearn, mlflow at start-up

    values = score(report, data, load_config(config), get_settings(), metrics, plots)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None)
    console.print(f"wrote [bold]{metrics}[/] ({shown}) and [bold]{plots}/[/]", highlight=False)
