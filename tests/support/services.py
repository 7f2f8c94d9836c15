"""Private PostgreSQL and Redis instances that a fault test may stop and start at will.

The machine's shared PostgreSQL (5432) and Redis (6379) serve every other test: a fault test
never touches them. `PrivatePostgres` runs `initdb` + `pg_ctl` from /usr/lib/postgresql/*/bin
in a temp folder on a free port (as the `postgres` user when run as root: PostgreSQL refuses
root); `PrivateRedis` runs `redis-server --save ""` as a subprocess. Both have `stop()`
(abrupt: `pg_ctl -m immediate`, SIGKILL) and `start()` on the same port and data, so a test
sees an outage and a recovery exactly as a client would. A missing binary skips the test
(fails under MLOOP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _missing(reason: str) -> None:
    if os.environ.get("MLOOP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable (MLOOP_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _await(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout}s")
        time.sleep(0.1)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:`port`, trust auth, database `mloop`."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            _missing("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1]).parent
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mloop-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._psql("CREATE DATABASE mloop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/mloop"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def _psql(self, sql: str) -> None:
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", sql)

    def start(self) -> None:
        """Start (or restart) the server on the same port and data; returns once it listens."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        _await(lambda: _listening(self.port), "PostgreSQL listening")

    def stop(self) -> None:
        """Stop at once (`-m immediate`: connections cut, no clean shutdown)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        _await(lambda: not _listening(self.port), "PostgreSQL stopped")

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A throw-away `redis-server` on 127.0.0.1:`port`, no persistence."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            _missing("redis-server is not installed (apt-get install redis-server)")
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _await(lambda: _listening(self.port), "Redis listening")

    def stop(self) -> None:
        """SIGKILL: Redis vanishes as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        _await(lambda: not _listening(self.port), "Redis stopped")

    def close(self) -> None:
        self.stop()
