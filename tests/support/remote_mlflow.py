"""A team's setup as real processes: moto's S3 server and an `mlflow server` on PostgreSQL.

    with MotoS3() as s3, MlflowServer(s3, mode="proxy") as server:
        settings = remote_settings(tmp_path / "home", server, monkeypatch)

`MotoS3` is moto's standalone server (a real HTTP S3 endpoint) on a free 127.0.0.1 port with
one bucket. `MlflowServer` runs `mlflow server` on a fresh PostgreSQL database with its
artifacts on that bucket, in one of two modes: `proxy` (`--artifacts-destination`: clients
send artifacts through the server as `mlflow-artifacts:` URIs and need no S3 credentials) or
`direct` (`--default-artifact-root s3://... --no-serve-artifacts`: clients write to S3
themselves, with the AWS variables of `MotoS3.client_env`). Either skips the test through
`tests.conftest.service_missing` when it cannot start.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mloop.settings import Settings, reset_settings
from tests.conftest import PG_ADMIN_URL, port_open, service_missing
from tests.support.env import clean_environ, reset_mlflow, scrub
from tests.support.serverproc import _free_port
from tests.support.waiting import wait_for

BIN = Path(sys.executable).parent
# moto accepts any credentials; these are what every process of the setup uses.
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class _Process:
    """A subprocess with its output in a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                command, env=env, stdout=handle, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def answers(self, url: str) -> bool:
        """True once `url` answers 200; fails the test when the process has exited."""
        if self.process.poll() is not None:
            service_missing(
                f"{self.log.stem} exited with {self.process.returncode}: {self.output()}"
            )
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class MotoS3:
    """moto's S3 server on 127.0.0.1 with the bucket `bucket` created."""

    def __init__(self, bucket: str = "mloop-team") -> None:
        self.bucket = bucket
        self.folder = Path(tempfile.mkdtemp(prefix="mloop-moto-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: _Process | None = None

    def __enter__(self) -> MotoS3:
        try:
            import boto3  # noqa: F401 (the s3 extra: moto and the clients need it)
            import moto  # noqa: F401
        except ImportError as exc:
            service_missing(f"moto[server]/boto3 are not installed ({exc}): pip install -e .[dev]")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = _Process(command, clean_environ(**AWS), self.folder / "moto.log")
        wait_for(lambda: self._process.answers(self.url + "/moto-api/"), "moto up", timeout=120)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def client_env(self) -> dict[str, str]:
        """The standard variables an S3 client (boto3, MLflow) reaches this server with."""
        return {**AWS, "MLFLOW_S3_ENDPOINT_URL": self.url}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS["AWS_DEFAULT_REGION"],
        )

    def objects(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2")
        found: list[str] = []
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found


class MlflowServer:
    """`mlflow server` on a fresh PostgreSQL database, artifacts on `s3` (mode proxy|direct)."""

    def __init__(self, s3: MotoS3, mode: str = "proxy") -> None:
        assert mode in ("proxy", "direct"), mode
        self.s3 = s3
        self.mode = mode
        self.prefix = f"mlflow-{mode}"  # where in the bucket this server's artifacts go
        self.database = f"mloop_mlflow_{uuid.uuid4().hex[:12]}"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: _Process | None = None
        self._created = False

    def __enter__(self) -> MlflowServer:
        try:
            import psycopg
        except ImportError:
            service_missing("psycopg is not installed: pip install 'mloop[postgres]'")
        if not port_open("127.0.0.1", 5432):
            service_missing("PostgreSQL is not listening on 127.0.0.1:5432")
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        except psycopg.Error as exc:
            service_missing(f"cannot create a PostgreSQL database for mlflow server: {exc}")
        self._created = True
        backend = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        backend = backend.rsplit("/", 1)[0] + f"/{self.database}"
        root = f"s3://{self.s3.bucket}/{self.prefix}"
        if self.mode == "proxy":
            artifacts = ["--artifacts-destination", root]
        else:
            artifacts = ["--default-artifact-root", root, "--no-serve-artifacts"]
        mlflow = shutil.which("mlflow", path=str(BIN)) or "mlflow"
        command = [mlflow, "server", "--backend-store-uri", backend, *artifacts]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = clean_environ(**self.s3.client_env)
        self._process = _Process(command, env, self.s3.folder / f"mlflow-{self.mode}.log")
        wait_for(lambda: self._process.answers(self.url + "/health"), "mlflow up", timeout=300)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.stop()
        if self._created:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def remote_settings(
    home: Path, server: MlflowServer, patch: pytest.MonkeyPatch, **env: str
) -> Settings:
    """Settings of one teammate: their own (empty) MLOOP_HOME, the team's tracking server.

    The environment is scrubbed of MLOOP_* and MLflow's process state reset (as
    `tests.support.env.home_env` does); `env` adds variables (MLOOP_* or AWS_*).
    """
    scrub(patch)
    for key in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", *AWS):
        patch.setenv(key, "")  # recorded, so what configure_mlflow sets is undone as well
        patch.delenv(key)
    patch.setenv("MLOOP_HOME", str(home))
    patch.setenv("MLOOP_TRACKING_URI", server.url)
    patch.setenv("MLOOP_FALLBACK_MODEL_URIS", "")
    patch.setenv("GIT_PYTHON_REFRESH", "quiet")
    for key, value in env.items():
        patch.setenv(key, value)
    reset_settings()
    reset_mlflow()
    settings = Settings()
    settings.ensure_home()
    return settings


def local_files(home: Path) -> list[str]:
    """Files under `home` that look like model artifacts (anything but mloop's databases)."""
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not p.name.endswith((".db", ".db-journal", ".db-wal", ".key", ".lock"))
    )


__all__ = ["AWS", "MlflowServer", "MotoS3", "local_files", "remote_settings"]
