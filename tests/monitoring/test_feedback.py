"""POST /feedback (app in-process): joins, clear refusals, quality gauges, restart survival."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.monitoring.quality import (
    classification_quality,
    degradation,
    regression_quality,
)
from mloop.serving.app import create_app
from tests.support import loopkit, modelkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("feedback-home"))
    return loopkit.train_with_profile(settings)


@pytest.fixture(scope="module")
def server(trained):
    with in_process(create_app("churn@production", trained.settings)) as live:
        yield live


def rows(trained, n=20, start=0):
    return modelkit.json_rows(trained.frame.iloc[start : start + n])


def test_a_label_right_after_its_prediction_is_joined_and_counted(server, trained):
    # The prediction log row may still be queued: the store flushes it instead of a 404.
    ids = loopkit.predict_ids(server, rows(trained, 1))
    answer = server.post("/feedback", json={"prediction_id": ids[0], "actual": 1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "recorded"
    assert (body["model_name"], body["model_version"]) == ("churn", trained.version)
    assert body["quality"]["labels"] >= 1
    assert "accuracy" in body["quality"]["metrics"]


def test_unknown_and_duplicate_labels_get_clear_answers(server, trained):
    ids = loopkit.predict_ids(server, rows(trained, 2, start=5))
    unknown = server.post("/feedback", json={"prediction_id": "no-such", "actual": 0})
    assert unknown.status_code == 404
    assert "no-such" in unknown.json()["detail"]
    first = server.post("/feedback", json={"prediction_id": ids[0], "actual": "1"})
    assert first.status_code == 200
    again = server.post("/feedback", json={"prediction_id": ids[0], "actual": 0})
    assert again.status_code == 409
    assert "already labelled" in again.json()["detail"]


def test_bulk_labels_get_a_result_each(server, trained):
    ids = loopkit.predict_ids(server, rows(trained, 4, start=10))
    items = [{"prediction_id": i, "actual": 0} for i in ids]
    items += [{"prediction_id": ids[0], "actual": 1}, {"prediction_id": "ghost", "actual": 1}]
    answer = server.post("/feedback", json={"feedback": items})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["recorded"], body["duplicate"], body["unknown"]) == (4, 1, 1)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["recorded"] * 4 + ["duplicate", "unknown"]
    assert body["results"][4]["detail"] == "twice in this request"


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ([1, 2], "JSON object"),
        ({"prediction_id": "a"}, "'actual' is missing"),
        ({"prediction_id": "a", "actual": None}, "'actual' must be"),
        ({"prediction_id": "a", "actual": {"x": 1}}, "'actual' must be"),
        ({"prediction_id": 7, "actual": 1}, "'prediction_id' must be"),
        ({"prediction_id": "a", "actual": 1, "extra": 2}, "unexpected field"),
        ({"feedback": []}, "non-empty array"),
        ({"feedback": [{"prediction_id": "a", "actual": 1}, 3]}, "feedback[1]"),
    ],
)
def test_bad_feedback_is_a_422_naming_the_problem(server, payload, needle):
    answer = server.post("/feedback", json=payload)
    assert answer.status_code == 422, answer.text
    assert needle in answer.json()["detail"]


def test_malformed_json_and_nan_are_refused(server):
    answer = server.post("/feedback", content=b"{nope")
    assert answer.status_code == 422 and "malformed JSON" in answer.json()["detail"]
    answer = server.post("/feedback", content=b'{"prediction_id": "a", "actual": NaN}')
    assert answer.status_code == 422 and "finite" in answer.json()["detail"]


def test_too_many_labels_in_one_request(trained):
    settings = trained.settings.model_copy(update={"max_batch_rows": 2})
    with in_process(create_app("churn@production", settings)) as live:
        items = [{"prediction_id": f"p{i}", "actual": 1} for i in range(3)]
        answer = live.post("/feedback", json={"feedback": items})
    assert answer.status_code == 422
    assert "over the limit of 2" in answer.json()["detail"]


def test_quality_gauges_and_labels_survive_a_restart(tmp_path):
    settings = modelkit.home_settings(tmp_path)
    trained = loopkit.train_with_profile(settings)
    data = rows(trained, 40)
    truth = trained.frame.iloc[:40]
    with in_process(create_app("churn@production", settings)) as first:
        ids = loopkit.predict_ids(first, data)
        labels = [
            {"prediction_id": i, "actual": int(y)}
            for i, y in zip(ids, truth.index % 2, strict=True)
        ]
        answer = first.post("/feedback", json={"feedback": labels})
        assert answer.json()["recorded"] == 40
        before = first.get("/monitor/quality").json()
    with in_process(create_app("churn@production", settings)) as second:
        after = second.get("/monitor/quality").json()
        again = second.post("/feedback", json={"prediction_id": ids[0], "actual": 0})
        text = second.get("/metrics").text
    assert after["labels"] == before["labels"] == 40
    assert after["metrics"] == pytest.approx(before["metrics"])
    assert again.status_code == 409
    accuracy = loopkit.metric_value(
        text, "model_quality", metric="accuracy", model_version=trained.version
    )
    assert accuracy == pytest.approx(before["metrics"]["accuracy"])
    labelled = loopkit.metric_value(text, "model_feedback_labels", model_version=trained.version)
    assert labelled == 40


def test_roc_auc_uses_the_positive_class_probability_derived_from_the_log():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    positive = rng.random(200)
    actual = (rng.random(200) < positive).astype(int).tolist()
    predicted = (positive >= 0.5).astype(int).tolist()
    logged = np.where(positive >= 0.5, positive, 1 - positive).tolist()  # predicted class's p
    quality = classification_quality(actual, predicted, logged)
    assert quality["roc_auc"] == pytest.approx(roc_auc_score(actual, positive))
    assert quality["accuracy"] == pytest.approx(np.mean(np.array(actual) == predicted))


def test_string_labels_multiclass_and_regression_metrics():
    binary = classification_quality(["no", "yes", "yes"], ["no", "yes", "no"], [0.9, 0.8, 0.6])
    assert binary["recall"] == pytest.approx(0.5) and "roc_auc" in binary
    multi = classification_quality(["a", "b", "c"], ["a", "b", "b"], [0.5, 0.5, 0.5])
    assert multi["accuracy"] == pytest.approx(2 / 3) and "roc_auc" not in multi
    errors = regression_quality([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    assert errors["mae"] == pytest.approx(0.5)
    assert errors["rmse"] == pytest.approx(np.sqrt((0.25 + 1) / 3))


def test_degradation_is_positive_when_the_model_got_worse():
    live = {"accuracy": 0.7, "rmse": 3.0, "f1": 0.9}
    training = {"accuracy": 0.8, "rmse": 2.0, "f1": 0.85}
    assert degradation(live, training) == pytest.approx({"accuracy": 0.1, "rmse": 1.0, "f1": -0.05})
