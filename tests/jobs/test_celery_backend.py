"""MLOOP_JOBS_BACKEND=celery: jobs go through Redis to a real `celery worker` process."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from mloop.jobs.celery import CeleryBackend, visibility_timeout
from mloop.jobs.queue import JobQueue
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.jobkit import job_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def _celery_worker(settings, log: Path) -> subprocess.Popen:
    env = clean_environ()
    env.update(
        MLOOP_HOME=str(settings.home),
        MLOOP_DATABASE_URL=settings.database_url,
        MLOOP_CELERY_BROKER_URL=settings.celery_broker_url,
        MLOOP_CELERY_QUEUE=settings.celery_queue,
        MLOOP_JOBS_CHUNK_ROWS=str(settings.jobs_chunk_rows),
        MLOOP_JOBS_TEST_DELAY_SECONDS=str(settings.jobs_test_delay_seconds),
        MLOOP_JOBS_LEASE_SECONDS=str(settings.jobs_lease_seconds),
        GIT_PYTHON_REFRESH="quiet",
    )
    command = [sys.executable, "-m", "celery", "-A", "mloop.jobs.celery", "worker"]
    command += ["--pool", "solo", "--queues", settings.celery_queue, "--loglevel", "warning"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def celery_settings(jobs_model, tmp_path, redis_url):
    return job_settings(
        jobs_model,
        tmp_path,
        jobs_backend="celery",
        celery_broker_url=redis_url,
        celery_queue=f"mloop-test-{uuid.uuid4().hex[:8]}",
        jobs_lease_seconds=2.0,
        jobs_poll_seconds=0.2,
        jobs_chunk_rows=10,
    )


def test_celery_settings_ack_late_with_a_visibility_timeout_above_the_longest_job(
    celery_settings,
):
    backend = CeleryBackend(JobQueue.from_settings(celery_settings), celery_settings)
    conf = backend.app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.broker_transport_options["visibility_timeout"] > celery_settings.jobs_max_seconds
    assert (
        visibility_timeout(celery_settings) == conf.broker_transport_options["visibility_timeout"]
    )
    assert conf.task_default_queue == celery_settings.celery_queue


def test_an_async_job_runs_on_a_celery_worker(jobs_model, celery_settings, tmp_path):
    worker = _celery_worker(celery_settings, tmp_path / "celery.log")
    try:
        with (
            ServerThread(create_app("churn@production", celery_settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            rows = modelkit.json_rows(jobs_model.frame.head(40))
            answer = http.post("/predict/async", json={"instances": rows})
            assert answer.status_code == 202
            job_id = answer.json()["job_id"]
            done = wait_for(
                lambda: (
                    (body := http.get(f"/jobs/{job_id}").json())["status"] == "succeeded" and body
                ),
                timeout=120,
                every=0.2,
            )
            sync = http.post("/predict/batch", json={"instances": rows}).json()
    finally:
        _stop(worker)
    assert done["backend"] == "celery" and ":celery-" in done["worker"]
    assert done["attempts"] == 1 and done["result"]["total_count"] == 40
    assert [p["prediction"] for p in done["result"]["predictions"]] == [
        p["prediction"] for p in sync["predictions"]
    ]


def test_a_job_whose_celery_worker_is_killed_finishes_on_another(
    jobs_model, celery_settings, tmp_path
):
    settings = celery_settings.model_copy(update={"jobs_test_delay_seconds": 0.3})
    first = _celery_worker(settings, tmp_path / "first.log")
    second = None
    try:
        with (
            ServerThread(create_app("churn@production", settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            rows = modelkit.json_rows(jobs_model.frame.head(100))
            job_id = http.post("/predict/async", json={"instances": rows}).json()["job_id"]
            wait_for(lambda: http.get(f"/jobs/{job_id}").json()["progress"] > 0, timeout=120)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            second = _celery_worker(settings, tmp_path / "second.log")
            done = wait_for(
                lambda: (
                    (body := http.get(f"/jobs/{job_id}").json())["status"] == "succeeded" and body
                ),
                timeout=120,
                every=0.2,
            )
    finally:
        _stop(first)
        _stop(second)
    assert done["attempts"] == 2 and done["result"]["total_count"] == 100


def test_a_duplicate_delivery_is_a_no_op(jobs_model, celery_settings, tmp_path):
    queue = JobQueue.from_settings(celery_settings)
    backend = CeleryBackend(queue, celery_settings)
    job = backend.submit(
        "predict",
        {"instances": modelkit.json_rows(jobs_model.frame.head(5))},
        model_uri="models:/churn/1",
        rows=5,
    )
    assert backend.dispatch(job.id)  # the same job id sent twice
    worker = _celery_worker(celery_settings, tmp_path / "celery.log")
    try:
        done = wait_for(lambda: (j := queue.get(job.id)).status == "succeeded" and j, timeout=120)
    finally:
        _stop(worker)
    assert done.attempts == 1 and done.result["total_count"] == 5
