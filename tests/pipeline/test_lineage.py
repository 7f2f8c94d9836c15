"""Lineage tags: commit only inside a git repository, data fingerprint, package versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mloop.data.io import file_sha256
from mloop.pipeline.lineage import git_commit, lineage_tags, package_versions


def test_no_git_commit_outside_a_repository(tmp_path):
    assert git_commit(tmp_path) is None
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    tags = lineage_tags(data, rows=1, cwd=tmp_path)
    assert "mloop.git_commit" not in tags
    assert tags["mloop.data_sha256"] == file_sha256(data)
    assert tags["mloop.data_rows"] == "1"
    assert json.loads(tags["mloop.package_versions"]) == package_versions()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_inside_a_repository(tmp_path):
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
    }
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    assert lineage_tags(data, rows=1, cwd=tmp_path)["mloop.git_commit"] == head


def test_package_versions_names_the_stack():
    versions = package_versions()
    assert set(versions) == {"mlflow", "scikit-learn", "pandas", "numpy", "mloop"}
    assert versions["mloop"] != "unknown"
