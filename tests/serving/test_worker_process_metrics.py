"""Process metrics per worker (`pid` label) and `mloop_build_info`, in one process and across
the workers of a real 2-worker `mloop serve` (whichever worker answers the scrape)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mloop import __version__
from mloop.serving.metrics import ServingMetrics
from mloop.serving.process_metrics import git_sha, worker_pids
from tests.cli.test_serve_cli import free_port
from tests.support import modelkit, serverproc
from tests.support.env import clean_environ

PROCESS = ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds")


def by_pid(text: str, name: str) -> dict[str, float]:
    return {
        s.labels["pid"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_one_process_reports_itself_and_its_build():
    text = ServingMetrics().render().decode()
    for name in PROCESS:
        assert set(by_pid(text, name)) == {str(os.getpid())}, name
    assert by_pid(text, "process_resident_memory_bytes")[str(os.getpid())] > 0
    sha = git_sha()
    assert f'mloop_build_info{{git_sha="{sha}",version="{__version__}"}} 1.0' in text


def test_the_git_sha_is_the_checkout_head():
    head = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        pytest.skip("not running from a git checkout")
    assert git_sha() == head.stdout.strip()


def test_worker_pids_are_the_live_siblings_owning_metric_files(tmp_path):
    """The workers of one supervisor: here the test process plays the supervisor."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        for pid in (child.pid, dead.pid, 1):  # pid 1: alive, but no sibling
            (tmp_path / f"counter_{pid}.db").write_bytes(b"")
            (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / "notes.txt").write_text("not a metric file")
        found = worker_pids(str(tmp_path), parent=os.getpid())
        assert found == sorted({os.getpid(), child.pid})
        assert worker_pids(str(tmp_path)) == [os.getpid()]  # none is a sibling of this process
        assert worker_pids(str(tmp_path / "missing")) == [os.getpid()]
    finally:
        child.kill()
        child.wait()


@pytest.fixture(scope="module")
def served_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("process-metrics-home")
    modelkit.train_and_register(modelkit.home_settings(home))
    return home


@pytest.mark.slow
def test_two_workers_each_report_their_own_process(served_home):
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
    workers: set[str] = set()
    scrapes: list[str] = []
    try:
        serverproc.wait_ready(url, proc)
        sent = 0
        # A new connection per request lets the kernel hand requests to either worker.
        while len(workers) < 2 and sent < 400 and proc.poll() is None:
            answer = httpx.post(f"{url}/predict", json={"features": row}, timeout=30)
            sent += 1
            if answer.status_code == 200:
                workers.add(answer.headers["x-mloop-worker"])
        # 20 scrapes on new connections: both workers answer some (the kernel spreads them)
        scrapes = [httpx.get(f"{url}/metrics", timeout=30).text for _ in range(20)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert len(workers) == 2, (workers, err)
    for text in scrapes:  # whichever worker answers, every worker is there, once
        for name in PROCESS:
            values = by_pid(text, name)
            assert set(values) == workers, (name, values)
        assert all(v > 0 for v in by_pid(text, "process_resident_memory_bytes").values())
        assert all(v > 0 for v in by_pid(text, "process_open_fds").values())
        assert text.count("mloop_build_info{") == 1
        assert f'version="{__version__}"' in text.split("mloop_build_info{", 1)[1]
    assert "Traceback" not in err, err
