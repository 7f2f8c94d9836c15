"""A project of `mloop init` as a real DVC pipeline in a temporary git repository:
`dvc repro` runs prepare -> train -> evaluate, a changed hyper-parameter reruns train and
evaluate only, `dvc metrics diff` shows the change, and the run records the dvc.lock hashes
(on the version and in the model card)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mloop.governance.cards import build_card, to_markdown
from mloop.registry.service import Registry
from tests.conftest import service_missing
from tests.support.projectkit import init_project, quicken

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_dvc_repro_params_change_metrics_diff_and_lineage(mloop_home, tmp_path):
    dvc = shutil.which("dvc", path=str(BIN)) or shutil.which("dvc")
    if dvc is None:
        service_missing("dvc is not installed: pip install 'dvc>=3' (in the dev extra)")
    project = init_project(tmp_path / "churn-dvc")
    quicken(project, n_estimators=10)
    _run("git", "init", "-q", cwd=project)
    _run(dvc, "init", "-q", cwd=project)
    first = _run(dvc, "repro", cwd=project)
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first
    assert {"roc_auc", "accuracy"} <= set(yaml.safe_load((project / "metrics.json").read_text()))
    roc = (project / "plots" / "roc.csv").read_text().splitlines()
    assert roc[0] == "fpr,tpr" and len(roc) > 3
    assert (project / "plots" / "confusion.csv").read_text().startswith("actual,predicted")
    _run("git", "add", "-A", cwd=project)
    _run("git", "commit", "-q", "-m", "first", cwd=project)

    quicken(project, n_estimators=40)
    second = _run(dvc, "repro", cwd=project)
    assert "Stage 'prepare' didn't change, skipping" in second
    assert "Running stage 'train'" in second and "Running stage 'evaluate'" in second
    diff = _run(dvc, "metrics", "diff", cwd=project)
    assert "metrics.json" in diff and "roc_auc" in diff

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    md5 = {o["path"]: o["md5"] for o in lock["stages"]["prepare"]["outs"]}[
        "data/prepared/train.csv"
    ]
    registry = Registry(mloop_home)
    name = project.name
    details = registry.get_version(f"{name}/2")
    assert details.lineage["mloop.dvc.data/prepared/train.csv"] == md5
    assert "mloop.dvc.data/sample.csv" in details.lineage
    card = build_card(mloop_home, f"{name}/2", owner="ana", intended_use="tests")
    assert f"| DVC data/prepared/train.csv | `{md5}` |" in to_markdown(card)
