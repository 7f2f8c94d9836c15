"""Where the deploy files are, and the checkers they are run through (skip or fail when absent)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import loopkit

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"


def tool(name: str, install: str) -> str:
    """The path of `name` (the venv's bin first), or skip (fail under MLOOP_REQUIRE_SERVICES=1)."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        loopkit.tool_missing(f"{name} is not installed: {install}")
    return path


def run(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)
