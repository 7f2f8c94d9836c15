"""`mloop serve`: refuses bad input at once, and serves for real (one worker and several)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.serverproc import interrupt, wait_ready

runner = CliRunner()


def test_an_invalid_reference_exits_2_before_starting(mloop_home):
    result = runner.invoke(app, ["serve", "bad-ref!!"])
    assert result.exit_code == 2
    assert "error: invalid model reference 'bad-ref!!'" in result.output
    assert "hint: use NAME@ALIAS" in result.output


def test_an_unknown_log_level_exits_2(mloop_home):
    result = runner.invoke(app, ["serve", "churn@production", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "unknown log level 'loud'" in result.output


def test_help_has_an_example():
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "Example: mloop serve churn@production" in result.output


@pytest.fixture(scope="module")
def served_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("serve-cli-home")
    modelkit.train_and_register(modelkit.home_settings(home))
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_predictions_until_interrupted(served_home, tmp_path, workers):
    port = free_port()
    env = clean_environ()
    env.update(MLOOP_HOME=str(served_home), GIT_PYTHON_REFRESH="quiet")
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
        for _ in range(4):
            answer = httpx.post(f"{url}/predict", json={"features": row}, timeout=30)
            assert answer.status_code == 200
            assert answer.json()["model_version"] == "1"
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        if workers > 1:  # aggregated over workers through PROMETHEUS_MULTIPROC_DIR
            assert (
                'model_predictions_total{model_version="1",status="success",variant="default"} 4.0'
                in metrics
            )
    finally:
        out, err = interrupt(proc)
    assert f"{url}/docs" in out
    assert f"{url}/metrics" in out
    assert "Traceback" not in err, err


@pytest.mark.slow
def test_metrics_sum_requests_answered_by_several_workers(served_home):
    """No PROMETHEUS_MULTIPROC_DIR given: `mloop serve` makes one, and /metrics sums workers."""
    port = free_port()
    env = clean_environ()
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(MLOOP_HOME=str(served_home), GIT_PYTHON_REFRESH="quiet")
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
    workers: dict[str, int] = {}
    sent = 0
    try:
        deadline = time.monotonic() + 180  # a safety net, not an assertion on time
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        # A new connection per request lets the kernel hand requests to either worker.
        while (len(workers) < 2 or sent < 20) and sent < 400 and proc.poll() is None:
            answer = httpx.post(f"{url}/predict", json={"features": row}, timeout=30)
            if answer.status_code != 200:  # a worker still loading its model
                time.sleep(0.1)
                continue
            sent += 1
            pid = answer.headers["x-mloop-worker"]
            workers[pid] = workers.get(pid, 0) + 1
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert len(workers) == 2, workers
    sample = 'model_predictions_total{model_version="1",status="success",variant="default"}'
    assert f"{sample} {float(sent)}" in metrics
    assert "metrics of 2 workers aggregated in" in out
    folder = out.split("aggregated in", 1)[1].split()[0]
    assert not Path(folder).exists()  # the run's own folder is removed at exit
    assert "Traceback" not in err, err
