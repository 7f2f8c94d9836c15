"""The model server on real uvicorn: answers, metrics and the prediction log."""

from __future__ import annotations

import hashlib

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from mloop.client import Client
from mloop.store import PredictionRecord, open_database
from tests.support import modelkit
from tests.support.modelkit import sample


@pytest.fixture(scope="module")
def client(live):
    with Client(live.url) as c:
        yield c


def test_health_and_ready(client):
    assert client.health() == {"status": "healthy", "model_loaded": True}
    ready = client.ready()
    assert {k: ready[k] for k in ("status", "model_name", "model_version")} == {
        "status": "ready",
        "model_name": "churn",
        "model_version": "1",
    }
    assert ready["swap"]["state"] == "current"  # following churn@production (hot swaps)


def test_predict_matches_the_models_own_predict_proba(client, trained):
    rows = modelkit.json_rows(trained.frame.head(8))
    expected = trained.pipeline.predict_proba(trained.frame.head(8))
    classes = list(trained.pipeline.classes_)
    for i, row in enumerate(rows):
        answer = client.predict(row)
        assert answer["probabilities"] == {
            str(c): pytest.approx(p) for c, p in zip(classes, expected[i], strict=True)
        }
        assert answer["prediction"] == classes[expected[i].argmax()]
        assert answer["probability"] == pytest.approx(expected[i].max())
        assert answer["model_name"] == "churn" and answer["model_version"] == "1"
        assert len(answer["prediction_id"]) == 36
        assert answer["latency_ms"] >= 0


def test_a_row_as_a_list_in_signature_order_gives_the_same_answer(client, trained):
    row = modelkit.json_rows(trained.frame.head(1))[0]
    by_name = client.predict(row)
    by_position = client.predict([row[c] for c in modelkit.COLUMNS])
    assert by_position["probabilities"] == by_name["probabilities"]


def test_batch_matches_predict_proba_row_by_row(client, trained):
    head = trained.frame.head(40)
    answer = client.predict_batch(modelkit.json_rows(head))
    expected = trained.pipeline.predict_proba(head)
    assert answer["total_count"] == 40
    assert answer["model_name"] == "churn" and answer["model_version"] == "1"
    assert [p["prediction"] for p in answer["predictions"]] == list(
        trained.pipeline.classes_[expected.argmax(axis=1)]
    )
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        expected.max(axis=1).tolist()
    )
    assert len({p["prediction_id"] for p in answer["predictions"]}) == 40


def test_model_info_describes_the_served_version(client, trained):
    info = client.model_info()
    assert info["name"] == "churn" and info["version"] == "1" and info["alias"] == "production"
    assert info["uri"] == "models:/churn/1"
    assert info["flavor"] == "sklearn"
    assert info["run_id"]
    assert info["classes"] == [0, 1]
    assert [f["name"] for f in info["features"]] == modelkit.COLUMNS
    assert {f["name"]: f["required"] for f in info["features"]}["tenure"] is False
    assert info["fallback_used"] is None and info["load_failures"] == []


def test_metrics_count_rows_by_version_and_status(client, live, trained):
    before = client.metrics()
    rows = modelkit.json_rows(trained.frame.head(5))
    client.predict(rows[0])
    client.predict_batch(rows)
    httpx.post(f"{live.url}/predict", json={"features": {"tenure": "x"}})
    httpx.post(f"{live.url}/predict/batch", json={"instances": [{"bad": 1}, {"bad": 2}]})
    after = client.metrics()

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("model_predictions_total", model_version="1", status="success") == 6
    assert delta("model_predictions_total", model_version="1", status="invalid") == 3
    assert delta("model_prediction_latency_seconds_count", model_version="1") == 2
    assert delta("model_prediction_confidence_count", model_version="1") == 6
    buckets = {
        s.labels["le"]
        for f in text_string_to_metric_families(after)
        for s in f.samples
        if s.name == "model_prediction_confidence_bucket"
    }
    assert buckets == {"0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "0.99", "1.0", "+Inf"}


def test_metrics_use_the_prometheus_content_type(live):
    response = httpx.get(f"{live.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")


def test_prediction_log_keeps_each_answer_with_its_digest(client, live, trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    single = client.predict(rows[0])
    batch = client.predict_batch([[r[c] for c in modelkit.COLUMNS] for r in rows])
    live.app.state.mloop.prediction_log.flush()

    ids = [single["prediction_id"]] + [p["prediction_id"] for p in batch["predictions"]]
    with open_database(trained.settings).session() as session:
        records = {
            r.id: r
            for r in session.scalars(select(PredictionRecord).where(PredictionRecord.id.in_(ids)))
        }
    assert set(records) == set(ids)
    first = records[single["prediction_id"]]
    digest = hashlib.sha256(orjson.dumps(rows[0], option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert first.input_sha256 == digest
    assert first.features == rows[0]
    assert first.prediction == single["prediction"]
    assert first.probability == pytest.approx(single["probability"])
    assert (first.model_name, first.model_version) == ("churn", "1")
    # The same row sent as a list in a batch is logged by name, with the same digest.
    same_row = records[batch["predictions"][0]["prediction_id"]]
    assert same_row.input_sha256 == digest
    assert same_row.features == rows[0]


def test_openapi_documents_the_bodies(live):
    spec = httpx.get(f"{live.url}/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert (
        "features" in predict["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert "PredictResponse" in str(predict["responses"]["200"])
    assert httpx.get(f"{live.url}/docs").status_code == 200
