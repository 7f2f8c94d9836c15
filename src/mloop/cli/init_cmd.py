"""`mloop init`: a new project that trains, tests, serves and runs as a DVC pipeline at once."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mloop.cli.console import console


def init(
    path: Path = typer.Argument(..., help="The project folder (created; must be empty)."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="classification or regression; with --data, detected from the target "
        "when omitted, else classification.",
    ),
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Your table (.csv, .parquet): copied, features.yaml inferred."
    ),
    target: str | None = typer.Option(
        None, "--target", "-t", help="The label column of --data (default: its last column)."
    ),
    name: str | None = typer.Option(
        None, "--name", "-n", help="Registered model name (default: from the folder's name)."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty folder."),
) -> None:
    """Write a project: params.yaml, features.yaml, sample data, dvc.yaml, tests, Makefile, CI.

    Then `cd PATH && mloop train` trains and registers, `make test` checks the model and API.

    Example: mloop init churn-model

    Example: mloop init prices --task regression

    Example: mloop init my-model --data customers.csv --target churned
    """
    from mloop.cli.console import step_progress  # lazy: only the steps below need it
    from mloop.data.io import read_table  # lazy: pandas at CLI start-up
    from mloop.errors import ConfigError  # lazy: with the rest of this command
    from mloop.pipeline.dataset import REGRESSION, detect_task  # lazy: sklearn at start-up
    from mloop.scaffold.project import write_project  # lazy: pandas at CLI start-up
    from mloop.scaffold.samples import CLASSIFICATION, TASKS

    if task is not None and task not in TASKS:
        raise ConfigError(f"--task {task!r} is not a task", hint=f"tasks: {', '.join(TASKS)}")
    with step_progress() as progress:
        step = progress.add_task("writing the project", total=1)
        if task is None and data is not None and data.is_file():
            frame = read_table(data)
            column = target or str(frame.columns[-1])
            if column in frame.columns:
                detected = detect_task(frame[column].dropna())
                task = "regression" if detected == REGRESSION else CLASSIFICATION
        project = write_project(
            path, task=task or CLASSIFICATION, data=data, target=target, name=name, force=force
        )
        progress.update(step, completed=1, description="written")
    table = Table(title=f"{project.name}: a {project.task} project in {project.root}")
    table.add_column("file")
    for file in project.files:
        table.add_row(file)
    console.print(table)
    console.print(
        f"target [bold]{project.target}[/], {project.features} features in features.yaml, "
        f"data {project.data}",
        highlight=False,
    )
    console.print(
        f"next: [bold]cd {path} && mloop train[/], then [bold]make test[/] and "
        "[bold]make serve[/]; [bold]dvc repro[/] runs the DVC pipeline",
        highlight=False,
    )
