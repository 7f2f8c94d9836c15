"""`POST /predict/async`, `GET /jobs/{id}`, `DELETE /jobs/{id}` (the app in-process; the
real-server end-to-end test is test_crash_recovery.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mloop.serving.app import create_app
from mloop.store import PredictionRecord, open_database
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.jobkit import job_settings
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def server(jobs_model, tmp_path_factory):
    settings = job_settings(
        jobs_model, tmp_path_factory.mktemp("async-api"), jobs_chunk_rows=25, jobs_max_rows=300
    )
    with in_process(create_app("churn@production", settings), timeout=30) as running:
        yield running, settings


@pytest.fixture
def http(server):
    return server[0]


def _finished(http, job_id):
    def check():
        body = http.get(f"/jobs/{job_id}").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(check)


def test_an_async_prediction_is_accepted_then_answered(jobs_model, server, http):
    rows = modelkit.json_rows(jobs_model.frame.head(60))
    answer = http.post("/predict/async", json={"instances": rows})
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "queued" and body["rows"] == 60
    assert body["status_url"] == f"/jobs/{body['job_id']}"
    assert answer.headers["location"] == body["status_url"]
    done = _finished(http, body["job_id"])
    assert done["status"] == "succeeded" and done["progress"] == 1.0 and done["attempts"] == 1
    result = done["result"]
    assert result["total_count"] == 60 and result["model_version"] == "1"
    sync = http.post("/predict/batch", json={"instances": rows}).json()
    assert [p["prediction"] for p in result["predictions"]] == [
        p["prediction"] for p in sync["predictions"]
    ]
    assert [round(p["probability"], 9) for p in result["predictions"]] == [
        round(p["probability"], 9) for p in sync["predictions"]
    ]
    # the answered rows reach the prediction log, once each
    ids = [p["prediction_id"] for p in result["predictions"]]
    database = open_database(server[1])

    def logged():
        with database.session() as session:
            found = session.scalars(
                select(PredictionRecord.id).where(PredictionRecord.id.in_(ids))
            ).all()
        return len(found) == 60 and found

    assert sorted(wait_for(logged)) == sorted(ids)


def test_jobs_are_listed_newest_first(jobs_model, http):
    rows = modelkit.json_rows(jobs_model.frame.head(2))
    job_id = http.post("/predict/async", json={"instances": rows}).json()["job_id"]
    listed = http.get("/jobs", params={"limit": 5}).json()
    assert listed[0]["job_id"] == job_id and "result" not in listed[0]
    assert http.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert http.get("/jobs", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"instances": []}, 422, "'instances' is empty"),
        ({"instances": {"a": 1}}, 422, "must be an array"),
        ({"rows": []}, 422, "no 'instances' field"),
        ({"instances": [{"tenure": 1}]}, 422, "row 0: missing feature"),
        ({"instances": [[1, 2, 3, "basic", "2024-01-01"]] * 301}, 422, "over the limit of 300"),
    ],
)
def test_bad_submissions_are_refused_at_once_with_a_reason(http, body, status, detail):
    before = len(http.get("/jobs", params={"limit": 1000}).json())
    answer = http.post("/predict/async", json=body)
    assert answer.status_code == status
    assert detail in answer.json()["detail"]
    assert len(http.get("/jobs", params={"limit": 1000}).json()) == before  # nothing queued


def test_a_wrong_value_names_the_row_and_feature(jobs_model, http):
    rows = modelkit.json_rows(jobs_model.frame.head(3))
    rows[2]["support_calls"] = "many"
    answer = http.post("/predict/async", json={"instances": rows})
    assert answer.status_code == 422
    assert "row 2: feature 'support_calls' expects an integer" in answer.json()["detail"]


def test_malformed_json_is_a_422(http):
    answer = http.post(
        "/predict/async", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and "malformed JSON" in answer.json()["detail"]


def test_unknown_jobs_are_404_and_finished_jobs_cannot_be_cancelled(jobs_model, http):
    assert http.get("/jobs/does-not-exist").status_code == 404
    assert http.delete("/jobs/does-not-exist").status_code == 404
    rows = modelkit.json_rows(jobs_model.frame.head(2))
    job_id = http.post("/predict/async", json={"instances": rows}).json()["job_id"]
    _finished(http, job_id)
    refused = http.delete(f"/jobs/{job_id}")
    assert refused.status_code == 409
    assert "already succeeded" in refused.json()["detail"]


def test_a_queued_job_can_be_cancelled(jobs_model, tmp_path):
    settings = job_settings(jobs_model, tmp_path, jobs_embedded_worker=False)
    with in_process(create_app("churn@production", settings), timeout=30) as http:
        rows = modelkit.json_rows(jobs_model.frame.head(2))
        job_id = http.post("/predict/async", json={"instances": rows}).json()["job_id"]
        assert http.get(f"/jobs/{job_id}").json()["status"] == "queued"  # no worker here
        cancelled = http.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_async_predictions_wait_for_the_model(tmp_path, jobs_model):
    settings = job_settings(jobs_model, tmp_path)
    app = create_app("churn/99", settings, retry_interval=60)
    with in_process(app, timeout=30) as http:
        answer = http.post("/predict/async", json={"instances": [[1, 2, 3, "basic", "x"]]})
        assert answer.status_code == 503
        assert "model not loaded" in answer.json()["detail"]
