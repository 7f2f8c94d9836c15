"""Projects of `mloop init` for tests: written through the CLI, made quick to train.

project = init_project(tmp_path / "churn-model")
quicken(project)     # fewer trees and folds: the same pipeline, less CPU
"""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data.io import read_table
from tests.support.modelkit import json_rows

runner = CliRunner()


def init_project(path: Path, *args: str) -> Path:
    """`mloop init PATH ARGS`; the project folder (fails the test on a non-zero exit)."""
    result = runner.invoke(app, ["init", str(path), *args])
    assert result.exit_code == 0, result.output
    return path


def quicken(project: Path, n_estimators: int = 25, cv_folds: int = 2) -> None:
    """Fewer trees and folds in the project's params.yaml (comments are not kept)."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["params"]["n_estimators"] = n_estimators
    params["evaluate"]["cv_folds"] = cv_folds
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def feature_rows(project: Path, count: int = 3) -> list[dict]:
    """The first rows of the project's training table, without its target and id columns."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    frame = read_table(project / params["data"]["path"]).head(count)
    drop = [params["data"]["target"], *params["data"]["id_columns"]]
    return json_rows(frame.drop(columns=drop))
