"""Workers run real predict jobs with the real model: retries, user errors, cancel, shutdown."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.jobs import predict
from mloop.jobs.models import ModelCache
from mloop.jobs.queue import CANCELLED, FAILED, QUEUED, SUCCEEDED, JobQueue
from mloop.jobs.worker import DONE, RETRY, Worker, execute
from mloop.jobs.worker import FAILED as OUTCOME_FAILED
from tests.support import modelkit
from tests.support.jobkit import job_settings
from tests.support.waiting import wait_for


@pytest.fixture
def settings(jobs_model, tmp_path):
    return job_settings(jobs_model, tmp_path, jobs_chunk_rows=50)


@pytest.fixture
def queue(settings) -> JobQueue:
    return JobQueue.from_settings(settings)


def _predict_job(queue, rows, **fields):
    return queue.submit(
        predict.KIND, {"instances": rows}, model_uri="models:/churn/1", rows=len(rows), **fields
    )


def test_a_worker_scores_a_predict_job_like_the_model_does(jobs_model, settings, queue):
    rows = modelkit.json_rows(jobs_model.frame.head(120))
    job = _predict_job(queue, rows)
    worker = Worker(queue, settings, concurrency=2).start()
    try:
        done = wait_for(lambda: (j := queue.get(job.id)).status == SUCCEEDED and j)
    finally:
        worker.stop()
    result = done.result
    assert result["total_count"] == 120 and result["model_version"] == "1"
    expected = jobs_model.pipeline.predict_proba(jobs_model.frame.head(120))
    labels = [answer["prediction"] for answer in result["predictions"]]
    assert labels == expected.argmax(axis=1).tolist()
    probabilities = [answer["probability"] for answer in result["predictions"]]
    assert np.allclose(probabilities, expected.max(axis=1))
    assert len({answer["prediction_id"] for answer in result["predictions"]}) == 120


def test_a_flaky_job_is_retried_until_it_succeeds(settings, queue):
    calls = []

    def flaky(job, context):
        calls.append(job.attempts)
        if len(calls) < 3:
            raise RuntimeError(f"transient failure {len(calls)}")
        return {"ok": True}

    job = queue.submit("flaky", {}, max_attempts=3)
    outcomes = Worker(queue, settings, handlers={"flaky": flaky})
    wait_for(lambda: outcomes.run_until_idle() and queue.get(job.id).status == SUCCEEDED)
    assert calls == [1, 2, 3]
    assert queue.get(job.id).result == {"ok": True}


def test_a_job_that_keeps_failing_ends_failed_with_the_error(settings, queue):
    def broken(job, context):
        raise RuntimeError("disk on fire")

    job = queue.submit("broken", {}, max_attempts=2)
    runner = Worker(queue, settings, handlers={"broken": broken})
    wait_for(lambda: runner.run_until_idle() is not None and queue.get(job.id).finished)
    failed = queue.get(job.id)
    assert failed.status == FAILED and failed.attempts == 2
    assert failed.error == "RuntimeError: disk on fire"


def test_rows_that_no_longer_fit_the_model_fail_at_once(settings, queue):
    job = _predict_job(queue, [{"tenure": "many"}])
    claim = queue.claim("w")
    outcome = execute(claim, queue, settings, ModelCache(settings))
    assert outcome == OUTCOME_FAILED
    failed = queue.get(job.id)
    assert failed.attempts == 1 and "missing feature" in failed.error


def test_a_model_that_does_not_exist_fails_the_job_with_the_reason(settings, queue):
    job = queue.submit(predict.KIND, {"instances": [[1]]}, model_uri="models:/nope/1")
    claim = queue.claim("w")
    assert execute(claim, queue, settings, ModelCache(settings)) == OUTCOME_FAILED
    failed = queue.get(job.id)
    assert failed.attempts == 1 and "nope" in failed.error


def test_an_unexpected_error_is_retried(settings, queue):
    def once(job, context):
        raise OSError("network blip")

    job = queue.submit("blip", {})
    claim = queue.claim("w")
    assert execute(claim, queue, settings, ModelCache(settings), handlers={"blip": once}) == RETRY
    assert queue.get(job.id).status == QUEUED


def test_cancelling_a_running_job_stops_it_at_its_next_chunk(jobs_model, tmp_path):
    settings = job_settings(jobs_model, tmp_path, jobs_chunk_rows=10, jobs_test_delay_seconds=0.1)
    queue = JobQueue.from_settings(settings)
    job = _predict_job(queue, modelkit.json_rows(jobs_model.frame.head(200)))
    worker = Worker(queue, settings).start()
    try:
        wait_for(lambda: queue.get(job.id).progress > 0)
        queue.cancel(job.id)
        wait_for(lambda: worker.outcomes.get("lost"))
    finally:
        worker.stop()
    cancelled = queue.get(job.id)
    assert cancelled.status == CANCELLED and cancelled.result is None
    assert cancelled.progress < 1.0


def test_stopping_a_worker_hands_its_running_job_back(jobs_model, tmp_path):
    settings = job_settings(jobs_model, tmp_path, jobs_chunk_rows=10, jobs_test_delay_seconds=0.1)
    queue = JobQueue.from_settings(settings)
    job = _predict_job(queue, modelkit.json_rows(jobs_model.frame.head(200)))
    worker = Worker(queue, settings).start()
    wait_for(lambda: queue.get(job.id).progress > 0)
    worker.stop()
    back = queue.get(job.id)
    assert back.status == QUEUED and back.attempts == 0
    assert Worker(queue, settings).run_until_idle() == {DONE: 1}
    assert queue.get(job.id).status == SUCCEEDED


def test_the_job_context_refuses_a_job_that_ran_too_long(jobs_model, tmp_path):
    settings = job_settings(jobs_model, tmp_path, jobs_max_seconds=0.01)
    queue = JobQueue.from_settings(settings)

    def slow(job, context):
        import time

        time.sleep(0.05)
        context.report(0.5)
        return {}

    job = queue.submit("slow", {})
    Worker(queue, settings, handlers={"slow": slow}).run_until_idle()
    timed_out = queue.get(job.id)
    assert timed_out.status == FAILED and "ran longer than" in timed_out.error
