"""`mloop serve` as a real subprocess on 127.0.0.1, its stderr kept in a file to read.

    with served(settings, MLOOP_LOG_FORMAT="json") as server:
        httpx.get(server.url + "/health"); server.stderr()

For tests of what the server process itself writes (log lines, its stderr); `ServerThread`
serves in this process instead.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mloop.settings import Settings
from tests.support.env import clean_environ
from tests.support.waiting import wait_for


@dataclass
class Served:
    url: str
    log: Path
    process: subprocess.Popen

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str, process: subprocess.Popen, path: str, **client: object) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"the server exited with {process.returncode}")
    try:
        return httpx.get(url + path, timeout=2, **client).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(url: str, process: subprocess.Popen, path: str = "/ready", **client: object) -> None:
    """Wait until the server `process` started answers `path` 200 (mlflow models serve: /ping;
    `client`: httpx options such as `verify`); fails at once if the process exits, and after
    180 s as a safety net."""
    wait_for(
        lambda: _ready(url, process, path, **client), f"{url}{path} 200", timeout=180, every=0.2
    )


def interrupt(process: subprocess.Popen) -> tuple[str, str]:
    """Stop the server like Ctrl-C and return its (stdout, stderr); killed after 60 s."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


@contextmanager
def served(
    settings: Settings, model: str = "churn@production", *, folder: Path, **env: str
) -> Iterator[Served]:
    """`mloop serve MODEL` on a free port with `settings`' stores and `env` (MLOOP_* values)."""
    port = _free_port()
    log = folder / f"serve-{port}.stderr"
    environ = clean_environ(
        MLOOP_HOME=str(settings.home),
        MLOOP_TRACKING_URI=settings.tracking_uri,
        MLOOP_ARTIFACT_ROOT=settings.artifact_root,
        MLOOP_DATABASE_URL=settings.database_url,
        MLOOP_FALLBACK_MODEL_URIS="",
        **env,
    )
    mloop = shutil.which("mloop", path=str(Path(sys.executable).parent)) or "mloop"
    command = [mloop, "serve", model, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=handle)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Served(url, log, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
