"""Fault: one of two server workers is SIGKILLed under load.

Guarantees proven, on a real `mloop serve --workers 2`: the other worker keeps answering (the
only failures are requests the killed worker held at that instant, as transport errors, never
an error answer); uvicorn's supervisor starts a replacement, which answers too; the aggregated
counters keep the dead worker's counts (`model_predictions_total` covers every answer) and the
per-process metrics name only live workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.reliability.load import PredictLoad
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.loopkit import free_port
from tests.support.modelkit import sample
from tests.support.waiting import wait_for

THREADS = 4


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _pids(metrics: str) -> set[str]:
    return {
        line.split('pid="', 1)[1].split('"', 1)[0]
        for line in metrics.splitlines()
        if line.startswith("process_resident_memory_bytes{")
    }


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_other_keeps_answering(trained_home):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_environ(MLOOP_HOME=str(trained_home.settings.home), GIT_PYTHON_REFRESH="quiet")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # mloop serve makes its own
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--workers", "2", "--log-level", "warning"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = modelkit.json_rows(trained_home.frame.head(30))
    try:
        ready = lambda: proc.poll() is not None or _ready(url)  # noqa: E731
        wait_for(ready, "the server to be ready", timeout=300, every=0.2)
        assert proc.poll() is None, proc.stderr.read().decode()
        with PredictLoad(url, rows, threads=THREADS, fresh=True) as load:
            first = wait_for(
                lambda: len(set(load.workers)) == 2 and set(load.workers), "both workers answering"
            )
            victim = sorted(first)[0]
            os.kill(int(victim), signal.SIGKILL)
            killed_at = load.count()
            failed_at_kill = len(load.failures)

            def replaced():
                with load.lock:
                    return set(load.workers[killed_at:]) - first

            new = wait_for(replaced, "a replacement worker answering")
            back = load.count()
            wait_for(lambda: load.count() >= back + 40, "answers after the replacement")
        errors = [f for f in load.failures if not f.startswith("transport:")]
        assert errors == [], errors[:5]  # never an error answer
        # only requests in flight on the killed worker failed (one per client thread at most)
        assert len(load.failures) - failed_at_kill <= THREADS, load.failures
        survivor = (first - {victim}).pop()
        assert survivor in load.workers[killed_at:back]  # the other kept answering meanwhile
        assert victim not in load.workers[back:]
        assert len(new) == 1

        def scraped() -> str | None:
            text = httpx.get(f"{url}/metrics", timeout=30).text
            return text if _pids(text) == {survivor, *new} else None

        metrics = wait_for(scraped, "process metrics of the live workers only")
        labels = {"model_version": "1", "status": "success", "variant": "default"}
        answered = sample(metrics, "model_predictions_total", **labels)
        lost = len(load.failures)  # counted by the dead worker, the answer never sent
        assert len(load.ids) <= answered <= len(load.ids) + lost, (answered, len(load.ids))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()[-2000:]
