"""The whole loop through the real CLI and a real `mloop serve` process on 127.0.0.1.

data -> train -> registered version -> promote -> serve -> predict (single and batch) ->
/metrics counts them -> bad inputs get 422s naming the problem -> the prediction log has them.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.support.env import clean_environ

pytestmark = pytest.mark.slow

MLOOP = str(Path(sys.executable).with_name("mloop"))

SMALL_CONFIG = """
train:
  model: random_forest
  params: {n_estimators: 30, max_depth: 8, random_state: 7}
evaluate: {threshold: 0.5, cv_folds: 3}
register:
  name: churn
  criteria: {roc_auc: 0.70}
"""


def run(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([MLOOP, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"mloop {' '.join(args)} -> {result.returncode}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("e2e")
    env = clean_environ()
    env.update(MLOOP_HOME=str(root / "home"), NO_COLOR="1", COLUMNS="200")
    (root / "params.yaml").write_text(SMALL_CONFIG)
    return root, env


@pytest.fixture(scope="module")
def trained(workdir) -> tuple[Path, dict]:
    root, env = workdir
    run("data", "churn", "--rows", "3000", "--out", str(root / "churn.csv"), env=env)
    result = run(
        "train", "--data", str(root / "churn.csv"), "--config", str(root / "params.yaml"), env=env
    )
    assert "churn/1" in result.stdout + result.stderr
    run("models", "promote", "churn", "1", "--stage", "Production", env=env)
    return workdir


@pytest.fixture(scope="module")
def server(trained):
    root, env = trained
    port = free_port()
    process = subprocess.Popen(
        [MLOOP, "serve", "churn@production", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("server did not become ready")
    yield url, root, env
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def rows(root: Path, n: int) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(root / "churn.csv").drop(columns=["churn", "customer_id"]).head(n)
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def test_registered_version_is_in_production(trained):
    _, env = trained
    shown = run("models", "show", "churn@production", env=env)
    assert "Production" in shown.stdout
    listed = run("models", "list", env=env)
    assert "churn" in listed.stdout


def test_predict_single_and_batch_then_metrics_count_them(server):
    url, root, _ = server
    sample = rows(root, 20)
    with httpx.Client(base_url=url, timeout=30) as client:
        for row in sample[:5]:
            answer = client.post("/predict", json={"features": row})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["prediction"] in (0, 1)
            assert 0.5 <= body["probability"] <= 1.0
            assert body["model_version"] == "1"
            assert len(body["prediction_id"]) == 36
        batch = client.post("/predict/batch", json={"instances": sample})
        assert batch.status_code == 200, batch.text
        assert batch.json()["total_count"] == 20
        assert len({p["prediction_id"] for p in batch.json()["predictions"]}) == 20
        metrics = client.get("/metrics").text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("model_predictions_total{") and 'status="success"' in line
    ]
    assert counted, metrics
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) >= 25


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"features": {', "malformed JSON"),
        (b'{"instances": []}', "empty"),
        (b'{"feature": {}}', "features"),
    ],
)
def test_malformed_requests_get_422(server, body, expected):
    url, _, _ = server
    path = "/predict/batch" if b"instances" in body else "/predict"
    answer = httpx.post(url + path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert expected in answer.json()["detail"]


def test_bad_features_get_422_naming_the_field(server):
    url, root, _ = server
    row = rows(root, 1)[0]
    cases = {
        "tenure_months": {**row, "tenure_months": "long"},
        "shoe_size": {**row, "shoe_size": 44},
        "contract_type": {k: v for k, v in row.items() if k != "contract_type"},
    }
    for field, features in cases.items():
        answer = httpx.post(f"{url}/predict", json={"features": features})
        assert answer.status_code == 422, (field, answer.text)
        assert field in answer.json()["detail"], (field, answer.text)
    nan = httpx.post(
        f"{url}/predict",
        content=b'{"features": {"monthly_charges": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and "monthly_charges" in nan.json()["detail"]


def test_predictions_reach_the_prediction_log(server):
    url, root, env = server
    answer = httpx.post(f"{url}/predict", json={"features": rows(root, 1)[0]}).json()
    from mloop.settings import Settings
    from mloop.store import Database, PredictionRecord

    db = Database(Settings(home=Path(env["MLOOP_HOME"])).database_url)
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        with db.session() as session:
            record = session.scalars(
                select(PredictionRecord).where(PredictionRecord.id == answer["prediction_id"])
            ).first()
        time.sleep(0.2)
    assert record is not None
    assert record.model_name == "churn" and record.model_version == "1"
    assert len(record.input_sha256) == 64
    db.dispose()


def test_demo_runs_to_the_end(tmp_path):
    env = clean_environ()
    env.update(MLOOP_HOME=str(tmp_path / "demo-home"), NO_COLOR="1", COLUMNS="200")
    result = run("demo", "--rows", "1500", "--requests", "40", "--port", "0", "--no-serve", env=env)
    out = result.stdout
    assert "is in Production" in out
    assert "http://" not in out and "mloop serve churn@production" in out  # server stopped
    assert "HTTP 422" in out
