"""A real local Feast repo for tests: the Feast venv (built once, cached under .venv-tools/feast),
a repo in a temp folder (Parquet offline store, SQLite or Redis online store), `feast apply`,
`feast materialize`, and `feast serve` on a free port.

Feast runs out of process (its own venv): a venv that cannot be built skips the test with the
reason (fails under MLOOP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from mloop.errors import MloopError
from mloop.features import feast_env
from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.settings import Settings
from tests.support.loopkit import free_port, tool_missing
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MLOOP_TEST_FEAST_VENV", ROOT / ".venv-tools" / "feast"))
EXAMPLE = ROOT / "examples" / "feast"
FEATURES = ("customer_stats:tenure", "customer_stats:charges", "customer_stats:support_calls",
            "customer_stats:plan")  # fmt: skip
COLUMNS = ["tenure", "charges", "support_calls", "plan"]
TIMES = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"], utc=True)
CUSTOMERS = 120


def feast_venv() -> Path:
    """The Feast venv, built on first use (minutes) and reused; skips when it cannot be."""
    if (VENV / "bin" / "feast").exists():
        return VENV
    if shutil.which("python3.11") is None and not Path("/usr/bin/python3").exists():
        tool_missing("no python to build the Feast venv with")
    try:
        feast_env.make_env(VENV, python=shutil.which("python3.11"))
    except MloopError as exc:
        tool_missing(f"the Feast venv could not be built at {VENV}: {exc.message}")
    return VENV


def stats_frame(customers: int = CUSTOMERS, seed: int = 3) -> pd.DataFrame:
    """Three snapshots per customer, a month apart. A snapshot's values encode its month in
    `support_calls` (1, 2, 3), so a test can see which snapshot a row was joined with."""
    rng = np.random.default_rng(seed)
    parts = []
    for month, t in enumerate(TIMES, start=1):
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": np.arange(1, customers + 1, dtype=np.int64),
                    "event_timestamp": t,
                    "tenure": rng.uniform(0, 72, customers),
                    "charges": rng.uniform(10, 120, customers),
                    "support_calls": np.full(customers, month, dtype=np.int64),
                    "plan": rng.choice(["basic", "plus", "pro"], customers),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def make_repo(folder: Path, project: str, online_store: str | None = None) -> Path:
    """The example repo copied to `folder` with its data, under a unique project name."""
    repo = folder / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("data", "__pycache__", "*.md"))
    (repo / "data").mkdir()
    stats_frame().to_parquet(repo / "data" / "customer_stats.parquet", index=False)
    yaml = (repo / "feature_store.yaml").read_text()
    yaml = yaml.replace("project: mloop_churn", f"project: {project}")
    if online_store is not None:
        start = yaml.index("\nonline_store:") + 1
        end = yaml.index("\noffline_store:") + 1
        yaml = yaml[:start] + online_store + yaml[end:]
    (repo / "feature_store.yaml").write_text(yaml)
    return repo


@contextmanager
def feature_server(venv: Path, repo: Path) -> Iterator[str]:
    """`feast serve` on a free port of 127.0.0.1: yields its URL; stopped (by its pid) after."""
    port = free_port()
    log = (repo / "serve.log").open("w")
    process = subprocess.Popen(
        [str(venv / "bin" / "feast"), "serve", "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"feast serve exited: {(repo / 'serve.log').read_text()[-2000:]}")
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, timeout=120, what="feast serve to answer /health", every=0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)
        log.close()


def train_on(settings: Settings, frame: pd.DataFrame, label: str, name: str) -> str:
    """Fit a small forest on COLUMNS of `frame`, register it as `name`@production; version."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = frame[COLUMNS]
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", "passthrough", ["tenure", "charges", "support_calls"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=10, random_state=0)),
        ]
    ).fit(x, frame[label])
    configure_mlflow(settings)
    experiment_id = ensure_experiment("feast-tests", settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(x, pipeline.predict(x))
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                serialization_format="cloudpickle",
                registered_model_name=name,
                pip_requirements=["scikit-learn", "pandas", "cloudpickle"],
            )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, "production", version)
    return version
