"""SIGKILL the server in the middle of a job: after a restart the job finishes, written once."""

from __future__ import annotations

import signal
import socket
import subprocess

import httpx
import pytest
from sqlalchemy import func, select

from mloop.jobs.queue import JobQueue
from mloop.store import PredictionRecord
from mloop.store.db import Database
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.loopkit import serve_process
from tests.support.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_a_job_survives_sigkill_of_the_server_and_completes_once(jobs_model, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'crash.db'}"
    env = clean_environ()
    env.update(
        MLOOP_HOME=str(jobs_model.settings.home),
        MLOOP_DATABASE_URL=database_url,
        MLOOP_JOBS_CHUNK_ROWS="10",
        MLOOP_JOBS_TEST_DELAY_SECONDS="0.4",  # 12 chunks: about 5 s per attempt
        MLOOP_JOBS_LEASE_SECONDS="2",
        MLOOP_JOBS_POLL_SECONDS="0.2",
        GIT_PYTHON_REFRESH="quiet",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    rows = modelkit.json_rows(jobs_model.frame.head(120))
    first = serve_process(env, port, stderr=subprocess.PIPE)
    second = None
    try:
        wait_for(lambda: _ready(url), timeout=120, every=0.2)
        answer = httpx.post(f"{url}/predict/async", json={"instances": rows}, timeout=30)
        assert answer.status_code == 202
        job_id = answer.json()["job_id"]
        wait_for(lambda: httpx.get(f"{url}/jobs/{job_id}").json()["progress"] >= 0.25)
        first.send_signal(signal.SIGKILL)
        first.wait(30)

        queue = JobQueue(Database(database_url))
        killed = queue.get(job_id)
        assert killed.status == "running" and killed.result is None  # died mid-job
        assert 0 < killed.progress < 1

        second = serve_process(env, port, stderr=subprocess.PIPE)
        wait_for(lambda: _ready(url), timeout=120, every=0.2)
        done = wait_for(
            lambda: (
                (body := httpx.get(f"{url}/jobs/{job_id}").json())["status"] == "succeeded" and body
            ),
            timeout=120,
            every=0.2,
        )
        assert done["attempts"] == 2  # the lost attempt, then the one that finished
        assert done["result"]["total_count"] == 120
        ids = [p["prediction_id"] for p in done["result"]["predictions"]]
        assert len(set(ids)) == 120

        def logged() -> int:
            with queue.database.session() as session:
                return session.scalar(select(func.count()).select_from(PredictionRecord))

        assert wait_for(lambda: logged() == 120, timeout=60)  # rows logged once, by one attempt
        with queue.database.session() as session:
            found = set(session.scalars(select(PredictionRecord.id)))
        assert found == set(ids)
        assert queue.get(job_id).published_at is not None
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
