"""The example projects of examples/ (made by `mloop init`): each trains from its own folder
and is served in-process; and a fresh project's own `make test` (mloop's pytest plugin) passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.serving.app import create_app
from tests.support.apps import in_process
from tests.support.env import clean_environ
from tests.support.projectkit import feature_rows, init_project, quicken

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent
runner = CliRunner()


@pytest.mark.parametrize(
    ("example", "name", "kind"),
    [("regression", "house-prices", float), ("imbalanced", "churn-imbalanced", int)],
)
def test_example_trains_serves_and_predicts(mloop_home, tmp_path, monkeypatch, example, name, kind):
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project)
    quicken(project, n_estimators=40)
    monkeypatch.chdir(project)
    trained = runner.invoke(app, ["train"])
    assert trained.exit_code == 0, trained.output
    rows = feature_rows(project, 3)
    with in_process(create_app(f"{name}/1", mloop_home)) as http:
        single = http.post("/predict", json={"features": rows[0]})
        assert single.status_code == 200, single.text
        assert isinstance(single.json()["prediction"], kind)
        batch = http.post("/predict/batch", json={"instances": rows})
        assert batch.status_code == 200, batch.text
        number = next(k for k, v in rows[0].items() if isinstance(v, int | float))
        bad = http.post("/predict", json={"features": {**rows[0], number: "not a number"}})
        assert bad.status_code == 422, bad.text


def test_a_new_projects_make_test_passes(tmp_path):
    project = init_project(tmp_path / "fresh")
    quicken(project)
    env = clean_environ(PATH=f"{BIN}:{clean_environ()['PATH']}", DVC_NO_ANALYTICS="1")
    done = subprocess.run(
        ["make", "test", f"PYTHON={sys.executable}", f"MLOOP={BIN / 'mloop'}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
