"""Fault: the server and the job worker (`mloop worker`, a separate process) are both SIGKILLed
with jobs in flight, then started again.

Guarantees proven: every acknowledged (202) job ends `succeeded` after the restart (none stays
queued or running, none is lost); a job that ran twice gives the same answer as the model does
synchronously, and its prediction-log rows are written once (by the attempt that finished).
"""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
from sqlalchemy import select

from mloop.jobs.queue import JobQueue
from mloop.store import Database, PredictionRecord
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.loopkit import free_port, mloop_process
from tests.support.waiting import wait_for

JOBS = 3


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _end(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_jobs_in_flight_survive_sigkill_of_server_and_worker(trained_home, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'kill-all.db'}"
    env = clean_environ(
        MLOOP_HOME=str(trained_home.settings.home),
        MLOOP_DATABASE_URL=database_url,
        MLOOP_JOBS_EMBEDDED_WORKER="false",  # the separate worker runs the jobs
        MLOOP_JOBS_CHUNK_ROWS="10",
        MLOOP_JOBS_TEST_DELAY_SECONDS="0.3",
        MLOOP_JOBS_LEASE_SECONDS="2",
        MLOOP_JOBS_POLL_SECONDS="0.2",
        GIT_PYTHON_REFRESH="quiet",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = modelkit.json_rows(trained_home.frame.head(60))
    serve = ["serve", "churn@production", "--port", str(port), "--log-level", "warning"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(mloop_process(env, *serve, stderr=subprocess.PIPE))
        wait_for(lambda: _ready(url), "the server to be ready", timeout=300, every=0.2)
        worker_args = ("worker", "--concurrency", "2")
        procs.append(mloop_process(env, *worker_args, stderr=subprocess.PIPE))  # the db is migrated
        sync = httpx.post(f"{url}/predict/batch", json={"instances": rows}, timeout=60).json()
        ids = []
        for _ in range(JOBS):
            answer = httpx.post(f"{url}/predict/async", json={"instances": rows}, timeout=30)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["job_id"])
        worker = procs[-1]

        def running() -> bool:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            return httpx.get(f"{url}/jobs/{ids[0]}").json()["progress"] > 0

        wait_for(running, "a job running", timeout=300, every=0.2)
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        queue = JobQueue(Database(database_url))
        assert any(queue.get(i).status in ("running", "queued") for i in ids)  # in flight

        procs.append(mloop_process(env, *serve, stderr=subprocess.PIPE))
        wait_for(lambda: _ready(url), "the server to be ready again", timeout=300, every=0.2)
        procs.append(mloop_process(env, *worker_args, stderr=subprocess.PIPE))

        def ended():
            bodies = [httpx.get(f"{url}/jobs/{i}", timeout=30).json() for i in ids]
            return bodies if all(b["status"] in ("succeeded", "failed") for b in bodies) else None

        done = wait_for(ended, "every job to end", timeout=300, every=0.5)
    finally:
        for proc in procs:
            _end(proc)
    assert [b["status"] for b in done] == ["succeeded"] * JOBS, done
    expected = [p["prediction"] for p in sync["predictions"]]
    job_ids = []
    for body in done:
        assert [p["prediction"] for p in body["result"]["predictions"]] == expected
        job_ids += [p["prediction_id"] for p in body["result"]["predictions"]]
    assert len(set(job_ids)) == JOBS * len(rows)
    with queue.database.session() as session:
        logged = list(session.scalars(select(PredictionRecord.id)))
    assert len(logged) == len(set(logged))
    assert set(job_ids) <= set(logged)  # each job's rows, logged once, by the finishing attempt
