"""Where a model came from: code commit, data fingerprint, package versions, as run tags."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

from mloop.data.io import file_sha256

PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "mloop")


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The HEAD commit of the git repository around `cwd`, or None outside one (never fails)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) >= 7 else None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a logged model depends on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def lineage_tags(data_path: Path, rows: int, cwd: str | Path | None = None) -> dict[str, str]:
    """The `mloop.*` lineage tags of a training run; `mloop.git_commit` only inside a repo."""
    tags = {
        "mloop.data_path": str(Path(data_path).resolve()),
        "mloop.data_sha256": file_sha256(data_path),
        "mloop.data_rows": str(rows),
        "mloop.package_versions": json.dumps(package_versions(), sort_keys=True),
    }
    commit = git_commit(cwd)
    if commit:
        tags["mloop.git_commit"] = commit
    return tags
