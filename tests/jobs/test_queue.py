"""The durable queue on SQLite and PostgreSQL: leases, reclaim, idempotent completion, retries."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.jobs.queue import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobQueue


def _expire(queue: JobQueue) -> None:
    """Make every lease taken from now on expire almost at once."""
    queue.lease = timedelta(seconds=0.05)


def test_a_submitted_job_is_committed_claimed_once_and_completed(queue):
    job = queue.submit("predict", {"instances": [[1]]}, model_uri="models:/m/1", rows=1)
    assert queue.get(job.id).status == QUEUED
    claim = queue.claim("worker-a")
    assert claim is not None and claim.job.id == job.id
    assert claim.job.status == RUNNING and claim.job.attempts == 1
    assert claim.job.claimed_by == "worker-a"
    assert queue.claim("worker-b") is None  # leased: nobody else gets it
    assert queue.heartbeat(claim, progress=0.5)
    assert queue.get(job.id).progress == 0.5
    assert queue.complete(claim, {"answer": 42})
    done = queue.get(job.id)
    assert done.status == SUCCEEDED and done.result == {"answer": 42}
    assert done.progress == 1.0 and done.finished_at is not None
    assert not queue.complete(claim, {"answer": 43})  # a second completion writes nothing
    assert queue.get(job.id).result == {"answer": 42}


def test_an_expired_lease_is_reclaimed_and_only_the_new_holder_completes(queue):
    job = queue.submit("predict", {})
    _expire(queue)
    first = queue.claim("dead-worker")
    time.sleep(0.1)
    second = queue.claim("live-worker")
    assert second is not None and second.job.id == job.id
    assert second.job.attempts == 2 and second.token != first.token
    assert not queue.heartbeat(first)  # the first worker learns it lost the job
    assert queue.complete(second, {"by": "live"})
    assert not queue.complete(first, {"by": "dead"})
    final = queue.get(job.id)
    assert final.result == {"by": "live"} and final.claimed_by == "live-worker"


def test_the_old_holder_may_still_finish_while_nobody_reclaimed(queue):
    job = queue.submit("predict", {})
    _expire(queue)
    claim = queue.claim("slow-worker")
    time.sleep(0.1)
    assert queue.complete(claim, {"late": True})
    assert queue.get(job.id).status == SUCCEEDED
    assert queue.claim("other") is None


def test_failures_retry_with_exponential_backoff_then_fail(queue):
    queue.backoff_seconds = 0.2
    job = queue.submit("predict", {}, max_attempts=2)
    claim = queue.claim("w")
    assert queue.fail(claim, "boom 1") == QUEUED
    waiting = queue.get(job.id)
    assert waiting.status == QUEUED and waiting.error == "boom 1"
    assert waiting.run_after > waiting.updated_at  # not due before the backoff
    assert waiting.to_dict()["retry_at"] is not None
    assert queue.claim("w") is None
    time.sleep(0.25)
    claim = queue.claim("w")
    assert claim is not None and claim.job.attempts == 2
    assert queue.fail(claim, "boom 2") == FAILED  # no attempts left
    failed = queue.get(job.id)
    assert failed.status == FAILED and failed.error == "boom 2"


def test_a_user_error_fails_without_retry(queue):
    job = queue.submit("predict", {})
    claim = queue.claim("w")
    assert queue.fail(claim, "bad rows", retry=False) == FAILED
    assert queue.get(job.id).attempts == 1


def test_a_job_whose_worker_died_on_the_last_attempt_is_failed(queue):
    job = queue.submit("predict", {}, max_attempts=1)
    _expire(queue)
    assert queue.claim("dies") is not None
    time.sleep(0.1)
    assert queue.claim("next") is None
    failed = queue.get(job.id)
    assert failed.status == FAILED
    assert "worker lost on attempt 1 of 1" in failed.error


def test_release_hands_the_job_back_without_spending_an_attempt(queue):
    job = queue.submit("predict", {})
    claim = queue.claim("stopping")
    assert queue.release(claim)
    back = queue.get(job.id)
    assert back.status == QUEUED and back.attempts == 0 and back.claimed_by is None


def test_cancel_queued_and_running_jobs_and_refuse_finished_ones(queue):
    queued = queue.submit("predict", {})
    assert queue.cancel(queued.id).status == CANCELLED
    running = queue.submit("predict", {})
    claim = queue.claim("w")
    assert claim.job.id == running.id
    assert queue.cancel(running.id).status == CANCELLED
    assert not queue.heartbeat(claim)  # the worker is told to stop
    assert not queue.complete(claim, {"x": 1})
    assert queue.get(running.id).result is None
    assert queue.cancel(running.id).status == CANCELLED  # cancelling again is harmless
    done = queue.submit("predict", {})
    queue.complete(queue.claim("w"), {})
    with pytest.raises(ConflictError, match="already succeeded"):
        queue.cancel(done.id)


def test_unknown_ids_and_statuses_are_clear_errors(queue):
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        queue.get("nope")
    with pytest.raises(NotFoundError):
        queue.cancel("nope")
    with pytest.raises(ValidationError, match="unknown job status 'done'"):
        queue.list(status="done")


def test_list_counts_and_filters(queue):
    ids = [queue.submit("predict", {}).id for _ in range(3)]
    queue.complete(queue.claim("w"), {})
    assert {j.id for j in queue.list()} == set(ids)
    assert len(queue.list(status=QUEUED)) == 2
    assert queue.counts()[SUCCEEDED] == 1 and queue.counts()[QUEUED] == 2


def test_publication_is_taken_by_exactly_one_caller(queue):
    job = queue.submit("predict", {}, model_uri="models:/m/1")
    queue.complete(queue.claim("w"), {})
    assert [j.id for j in queue.unpublished({"models:/m/1"})] == [job.id]
    assert queue.unpublished({"models:/other/1"}) == []
    assert queue.mark_published(job.id)
    assert not queue.mark_published(job.id)
    assert queue.unpublished({"models:/m/1"}) == []


def test_many_workers_claim_each_job_exactly_once(queue):
    jobs = {queue.submit("predict", {"n": i}).id for i in range(30)}
    claimed: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (claim := queue.claim(name)) is not None:
            with lock:
                claimed.append(claim.job.id)
            assert queue.complete(claim, {"by": name})

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(jobs)  # every job once, none twice
    assert queue.counts()[SUCCEEDED] == 30
