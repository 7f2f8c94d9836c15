"""Feast's own virtual environment, and running Feast's CLI and scripts in it.

Every Feast release pins pandas<3 and prometheus-client<0.25, below what mloop runs, so
Feast lives in a venv of its own (`mloop features feast-env` makes it, MLOOP_FEAST_VENV names
it) and mloop talks to it only through subprocesses (`feast apply`, `feast materialize`, the
historical-features script) and HTTP (`feast serve`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from mloop.errors import ConfigError, MloopError

FEAST_REQUIREMENT = "feast[redis]==0.67.*"  # the major (0.x minor) mloop is tested with


def python_of(venv: Path) -> Path:
    """The interpreter of a virtual environment."""
    return venv / "bin" / "python"


def require_env(venv: Path) -> Path:
    """The venv's python, or ConfigError when the Feast venv has not been made."""
    python = python_of(venv)
    if not (venv / "bin" / "feast").exists():
        raise ConfigError(
            f"no Feast environment at {venv}",
            hint="make it with `mloop features feast-env`, or set MLOOP_FEAST_VENV",
        )
    return python


def make_env(venv: Path, requirement: str = FEAST_REQUIREMENT, python: str | None = None) -> Path:
    """Create (or complete) the Feast venv at `venv`; returns its python. Idempotent."""
    base = python or sys.executable
    if not python_of(venv).exists():
        _run([base, "-m", "venv", str(venv)], "creating the Feast venv")
    if not (venv / "bin" / "feast").exists():
        _run(
            [str(python_of(venv)), "-m", "pip", "install", "-q", requirement],
            f"installing {requirement}",
        )
    return python_of(venv)


def run_feast(venv: Path, repo: Path, args: Sequence[str], timeout: float = 600) -> str:
    """Run `feast ARGS` in `repo` with the venv's CLI; its output, or MloopError with its
    last lines."""
    require_env(venv)
    return _run([str(venv / "bin" / "feast"), *args], f"feast {args[0]}", cwd=repo, timeout=timeout)


def apply(venv: Path, repo: Path) -> str:
    """`feast apply`: register the repo's definitions (and create the online tables)."""
    return run_feast(venv, repo, ["apply"])


def materialize(
    venv: Path, repo: Path, start: datetime | None = None, end: datetime | None = None
) -> str:
    """`feast materialize START END`, or `materialize-incremental END` without a start."""
    end = end or datetime.now().astimezone()
    if start is None:
        return run_feast(venv, repo, ["materialize-incremental", _iso(end)])
    if start >= end:
        raise ConfigError(f"--start {_iso(start)} is not before --end {_iso(end)}")
    return run_feast(venv, repo, ["materialize", _iso(start), _iso(end)])


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _run(command: Sequence[str], what: str, cwd: Path | None = None, timeout: float = 1800) -> str:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MloopError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise MloopError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout
