"""Async job answers carry time-ordered UUIDv7 prediction ids, like `/predict`."""

from __future__ import annotations

import uuid

import pytest

from mloop.jobs.predict import prediction_ids
from mloop.serving.app import create_app
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.jobkit import job_settings
from tests.support.waiting import wait_for


def test_ids_are_version_7_unique_and_ordered():
    ids = prediction_ids(500)
    parsed = [uuid.UUID(i) for i in ids]
    assert {p.version for p in parsed} == {7}
    assert {p.variant for p in parsed} == {uuid.RFC_4122}
    assert len(set(ids)) == 500
    later = uuid.UUID(prediction_ids(1)[0])
    assert later.int >> 80 >= parsed[0].int >> 80  # the millisecond prefix does not go back


@pytest.fixture(scope="module")
def http(jobs_model, tmp_path_factory):
    settings = job_settings(jobs_model, tmp_path_factory.mktemp("job-ids"))
    with in_process(create_app("churn@production", settings), timeout=30) as running:
        yield running


def test_an_async_job_answers_with_uuid7_ids_like_the_sync_path(jobs_model, http):
    rows = modelkit.json_rows(jobs_model.frame.head(5))
    job = http.post("/predict/async", json={"instances": rows}).json()

    def finished():
        body = http.get(f"/jobs/{job['job_id']}").json()
        return body if body["status"] == "succeeded" else None

    done = wait_for(finished)
    versions = {uuid.UUID(p["prediction_id"]).version for p in done["result"]["predictions"]}
    sync = http.post("/predict/batch", json={"instances": rows}).json()
    assert versions == {uuid.UUID(p["prediction_id"]).version for p in sync["predictions"]} == {7}
