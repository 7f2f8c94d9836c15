"""The world the docs' examples run in: a store with the demo model, files, a real server.

One template per session: the demo's churn data, three quick versions, churn@production at
v1, churn@candidate at v3, the `churn-ab` example deployment, no identities (as a new
install), and the files the examples name (train.csv, today.csv, customers.parquet, ...).
Each page gets its own copy (so `mloop users add alice` on two pages does not clash) and,
when its examples call a server, one `mloop serve churn@production` on a free local port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd

from tests.docs.markdown import ROOT
from tests.support.env import clean_environ

BIN = Path(sys.executable).parent
MLOOP = str(BIN / "mloop")
QUICK = "train: {params: {n_estimators: 20, max_depth: 6}}\nevaluate: {cv_folds: 0}\n"
WEBHOOK_SECRET = "docs-webhook-secret-0123456789abcdef"
# One process builds the whole template (each CLI start costs seconds on a loaded machine).
TEMPLATE = """
import json
from pathlib import Path

import mlflow

from mloop.data import generate_churn
from mloop.deploy.service import DeploymentService
from mloop.deploy.spec import load_spec
from mloop.governance.governed import governed_registry
from mloop.pipeline.config import load_config
from mloop.pipeline.train import train
from mloop.settings import get_settings

frame = generate_churn(2000, seed=42)
frame.to_csv("train.csv", index=False)
frame.to_parquet("train.parquet", index=False)
generate_churn(600, seed=8, drift=True).to_csv("today.csv", index=False)
generate_churn(500, seed=7).to_csv("holdout.csv", index=False)
generate_churn(1200, seed=9).to_parquet("customers.parquet", index=False)
Path("exports").mkdir(exist_ok=True)
for part in range(2):
    generate_churn(400, seed=20 + part).to_parquet(f"exports/part-{part}.parquet", index=False)
for name, seed in (("batch_1", 30), ("batch_2", 31)):
    generate_churn(300, seed=seed).drop(columns=["customer_id", "churn"]).to_csv(
        f"{name}.csv", index=False
    )

settings = get_settings()
registry = governed_registry(settings)
config = load_config(Path("quick.yaml"))
runs = [train(Path("train.csv"), config, settings=settings, registry=registry) for _ in range(3)]
assert all(r.registered for r in runs), [r.failed_criteria for r in runs]
registry.promote("churn", "1", "Production", actor="docs")
mlflow.MlflowClient().set_registered_model_alias("churn", "candidate", "3")
DeploymentService(settings).apply(load_spec(EXAMPLE), "docs")
print(json.dumps({"RUN_ID": runs[0].run_id}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(folder: Path, **extra: str) -> dict[str, str]:
    """What a reader's shell has: the venv's bin on PATH, MLOOP_HOME, no other MLOOP_*."""
    env = clean_environ(
        MLOOP_HOME=str(folder / "home"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        NO_COLOR="1",
        COLUMNS="200",
        GIT_PYTHON_REFRESH="quiet",
        MLOOP_MODEL_WEBHOOK_SECRET=WEBHOOK_SECRET,
        **extra,
    )
    env.pop("VIRTUAL_ENV", None)
    for name in [name for name in env if name.startswith("MLFLOW_")]:
        env.pop(name)  # other tests' MLflow state (tracking URI, experiment id) is not a reader's
    return env


def run(args: list[str], folder: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout


def build_template(folder: Path) -> dict[str, str]:
    """The shared store and files; returns the values examples are given (RUN_ID)."""
    env = environment(folder)
    for part in ("examples", "deploy"):  # paths as from a checkout
        (folder / part).symlink_to(ROOT / part)
    (folder / "quick.yaml").write_text(QUICK)
    example = repr(str(ROOT / "examples/deployments/ab.yaml"))
    printed = run([sys.executable, "-c", f"EXAMPLE = {example}\n{TEMPLATE}"], folder, env)
    return json.loads(printed.strip().splitlines()[-1])


class Server:
    """A `mloop serve` process; stops with SIGTERM."""

    def __init__(self, args: list[str], folder: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / f"server-{port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(args, cwd=folder, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"server not ready in 120 s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class World:
    """One page's copy of the template: folder (the working directory), env, lazy server."""

    folder: Path
    given: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    server: Server | None = None
    learned: dict[str, str] = field(default_factory=dict)
    row: dict = field(default_factory=dict)

    @classmethod
    def copy_of(cls, template: Path, folder: Path, given: dict[str, str]) -> World:
        shutil.copytree(template, folder, symlinks=True)
        env = environment(folder)
        frame = pd.read_csv(folder / "holdout.csv").drop(columns=["customer_id", "churn"])
        row = json.loads(frame.head(1).to_json(orient="records"))[0]
        return cls(folder, given, env, row=row)

    def ensure_server(self, **settings: str) -> Server:
        """The page's `mloop serve churn@production`, started on first use with `settings`."""
        if self.server is None:
            port = free_port()
            args = [MLOOP, "serve", "churn@production", "--port", str(port)]
            self.server = Server(args, self.folder, {**self.env, **settings}, port)
        return self.server

    def new_prediction_id(self) -> str:
        answer = httpx.post(
            f"{self.ensure_server().url}/predict", json={"features": self.row}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["prediction_id"]

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
