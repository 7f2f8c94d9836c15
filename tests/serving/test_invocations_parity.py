"""`POST /invocations` answers like `mlflow models serve` on the same registered model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import modelkit, serverproc
from tests.support.env import clean_environ

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(trained, tmp_path_factory) -> Iterator[str]:
    """A real `mlflow models serve` subprocess for models:/churn/1."""
    port = _free_port()
    env = clean_environ()
    bin_dir = Path(sys.executable).parent  # mlflow runs `uvicorn` from PATH
    env.update(
        MLFLOW_TRACKING_URI=trained.settings.tracking_uri,
        GIT_PYTHON_REFRESH="quiet",
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    mlflow_cli = bin_dir / "mlflow"
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(mlflow_cli), "models", "serve", "-m", "models:/churn/1"]
            + ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        serverproc.wait_ready(url, proc, "/ping")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _payloads(frame) -> dict[str, dict]:
    rows = modelkit.json_rows(frame)
    columns = list(rows[0])
    return {
        "dataframe_split": {
            "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}
        },
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs": {"inputs": rows},
        "inputs as columns": {"inputs": {c: [r[c] for r in rows] for c in columns}},
        "with params": {"dataframe_records": rows, "params": {}},
        "one row": {"dataframe_records": rows[:1]},
    }


@pytest.mark.parametrize(
    "kind",
    [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
        "inputs as columns",
        "with params",
        "one row",
    ],
)
def test_same_answers_as_mlflow_models_serve(mlflow_server, live, trained, kind):
    payload = _payloads(trained.frame.head(25))[kind]
    theirs = httpx.post(f"{mlflow_server}/invocations", json=payload, timeout=60)
    ours = httpx.post(f"{live.url}/invocations", json=payload, timeout=60)
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    assert ours.json() == theirs.json()
    assert set(ours.json()) == {"predictions"}


def test_bad_payloads_are_refused_in_mlflows_error_shape(mlflow_server, live, trained):
    rows = modelkit.json_rows(trained.frame.head(2))
    for payload in (
        {"unknown_format": rows},
        {"dataframe_records": rows, "instances": rows},
        {"dataframe_records": [{k: v for k, v in rows[0].items() if k != "plan"}]},
        {"dataframe_records": [{**rows[0], "charges": "lots"}]},
        {"dataframe_records": [{**rows[0], "support_calls": None}]},
        b"{not json",
    ):
        send = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
        headers = {"content-type": "application/json"}
        theirs = httpx.post(f"{mlflow_server}/invocations", headers=headers, timeout=60, **send)
        ours = httpx.post(f"{live.url}/invocations", headers=headers, timeout=60, **send)
        assert theirs.status_code == ours.status_code == 400, (payload, theirs.text, ours.text)
        # MLflow says BAD_REQUEST, or INVALID_PARAMETER_VALUE for some schema errors.
        assert theirs.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
        assert ours.json()["error_code"] == "BAD_REQUEST"
        assert ours.json()["message"] and "Traceback" not in ours.text


def test_csv_body_is_accepted(live, trained):
    head = trained.frame.head(5)
    expected = httpx.post(
        f"{live.url}/invocations", json={"dataframe_records": modelkit.json_rows(head)}
    ).json()
    answer = httpx.post(
        f"{live.url}/invocations",
        content=head.to_csv(index=False),
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected


def test_extra_columns_are_ignored_like_mlflow(live, trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    plain = httpx.post(f"{live.url}/invocations", json={"dataframe_records": rows}).json()
    extra = [{**r, "customer_id": "c-1"} for r in rows]
    answer = httpx.post(f"{live.url}/invocations", json={"dataframe_records": extra})
    assert answer.status_code == 200 and answer.json() == plain
