"""Fault: Redis (the shared prediction cache and the Celery broker) is killed and restarted.

Guarantees proven: with the cache in Redis, no request fails while Redis is away (the cache is
bypassed, with a warning naming it and `mloop_prediction_cache_total{result="error"|"bypassed"}`)
and the cache is used again once Redis is back; with Celery jobs, a job submitted while the
broker is away is acknowledged (committed) and runs once it is back, and a job whose message
Redis lost (restarted empty) is sent again and finishes: none is lost.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.reliability.load import PredictLoad
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.modelkit import sample
from tests.support.waiting import wait_for


def _cache_rows(metrics: str, result: str) -> float:
    return sample(metrics, "mloop_prediction_cache_total", model_version="1", result=result)


def test_a_redis_outage_bypasses_the_cache_and_fails_no_request(
    trained_home, private_redis, caplog
):
    pytest.importorskip("redis", reason="redis is not installed: pip install 'mloop[redis]'")
    settings = trained_home.settings.model_copy(
        update={"cache_url": private_redis.url, "cache_ttl_seconds": 60.0}
    )
    rows = modelkit.json_rows(trained_home.frame.head(10))  # few rows: hits once warm
    server = ServerThread(create_app("churn@production", settings, log_predictions=False))
    server.start()
    caplog.set_level(logging.WARNING, logger="mloop.serving")
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        metrics = lambda: http.get("/metrics").text  # noqa: E731
        with PredictLoad(server.url, rows) as load:
            wait_for(lambda: _cache_rows(metrics(), "hit") > 0, "cache hits before the outage")
            private_redis.stop()
            wait_for(lambda: _cache_rows(metrics(), "bypassed") > 0, "the cache bypassed")
            during = load.count()
            wait_for(lambda: load.count() >= during + 40, "answers while Redis is down")
            private_redis.start()
            hits = _cache_rows(metrics(), "hit")
            wait_for(lambda: _cache_rows(metrics(), "hit") > hits, "cache hits after the outage")
        assert load.failures == [], load.failures[:5]
        assert _cache_rows(metrics(), "error") >= 1
        warned = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert warned and f":{private_redis.port}" in warned[0]
        http.close()
    finally:
        server.stop()


def _celery_worker(settings, log: Path) -> subprocess.Popen:
    env = clean_environ(
        MLOOP_HOME=str(settings.home),
        MLOOP_DATABASE_URL=settings.database_url,
        MLOOP_CELERY_BROKER_URL=settings.celery_broker_url,
        MLOOP_CELERY_QUEUE=settings.celery_queue,
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


@pytest.mark.slow
def test_celery_jobs_survive_a_redis_restart_that_lost_their_messages(
    trained_home, private_redis, tmp_path
):
    pytest.importorskip("celery", reason="celery is not installed: pip install 'mloop[celery]'")
    settings = trained_home.settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'jobs.db'}",
            "jobs_backend": "celery",
            "celery_broker_url": private_redis.url,
            "celery_queue": f"mloop-faults-{uuid.uuid4().hex[:8]}",
            "jobs_poll_seconds": 0.2,
            "jobs_lease_seconds": 2.0,
        }
    )
    rows = modelkit.json_rows(trained_home.frame.head(20))
    worker = None
    try:
        with (
            ServerThread(create_app("churn@production", settings)) as server,
            httpx.Client(base_url=server.url, timeout=60) as http,
        ):
            # sent to the broker while no worker runs; then Redis restarts empty: message lost
            queued = http.post("/predict/async", json={"instances": rows})
            assert queued.status_code == 202, queued.text
            private_redis.stop()
            # submitted while the broker is away: committed, acknowledged, sent later
            away = http.post("/predict/async", json={"instances": rows})
            assert away.status_code == 202, away.text
            private_redis.start()
            worker = _celery_worker(settings, tmp_path / "celery.log")
            ids = [queued.json()["job_id"], away.json()["job_id"]]

            def finished():
                bodies = [http.get(f"/jobs/{i}").json() for i in ids]
                return (
                    bodies if all(b["status"] in ("succeeded", "failed") for b in bodies) else None
                )

            done = wait_for(finished, "both jobs to finish", timeout=300, every=0.5)
    finally:
        _stop(worker)
    assert [b["status"] for b in done] == ["succeeded", "succeeded"], done
    assert all(b["result"]["total_count"] == 20 for b in done)
    answers = [[p["prediction"] for p in b["result"]["predictions"]] for b in done]
    assert answers[0] == answers[1]  # the same rows, the same answers, however delivered
