"""A served model carries its features.yaml: reject rules give a 422 naming the feature and the
bound on every data-plane route; count rules accept the row, count it and mark the log."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from mloop.features.contract import CONTRACT_ARTIFACT
from mloop.serving.app import create_app
from mloop.store import PredictionRecord, open_database
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.contractkit import CONTRACT, log_contract

NAME = "guarded"


@pytest.fixture(scope="module")
def guarded(trained, tmp_path_factory):
    model = modelkit.train_and_register(trained.settings, name=NAME)
    log_contract(NAME, tmp_path_factory.mktemp("contract"))
    return model


@pytest.fixture(scope="module")
def http(guarded):
    with in_process(create_app(f"{NAME}@production", guarded.settings)) as client:
        yield client


def good_row(guarded) -> dict:
    row = modelkit.json_rows(guarded.frame.head(1))[0]
    return row | {"tenure": 12.0, "charges": 50.0, "support_calls": 2, "plan": "plus"}


def test_the_loaded_model_carries_its_contract(http, trained):
    model = http.app.state.mloop.runtime.model
    assert model.contract == CONTRACT
    assert model.schema.contract_check is not None
    # a model logged without features.yaml has none, and nothing is checked
    with in_process(create_app("churn@production", trained.settings)) as plain:
        assert plain.app.state.mloop.runtime.model.contract is None
        assert plain.app.state.mloop.runtime.model.schema.contract_check is None
        row = modelkit.json_rows(trained.frame.head(1))[0] | {"tenure": -3.0}
        assert plain.post("/predict", json={"features": row}).status_code == 200


def test_predict_refuses_a_value_below_the_declared_minimum(http, guarded):
    row = good_row(guarded)
    assert http.post("/predict", json={"features": row}).status_code == 200
    answer = http.post("/predict", json={"features": row | {"tenure": -3.0}})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "row 0: tenure=-3 is below the declared minimum 0"


def test_batch_names_the_row_and_the_allowed_values(http, guarded):
    row = good_row(guarded)
    rows = [row, row | {"plan": "gold"}]
    answer = http.post("/predict/batch", json={"instances": rows})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("row 1: plan='gold' is not one of the allowed values")
    assert "basic" in detail and "pro" in detail
    answer = http.post("/predict/batch", json={"instances": [row, row | {"support_calls": 30}]})
    assert answer.status_code == 422
    assert "support_calls=30 is above the declared maximum 20" in answer.json()["detail"]


def test_invocations_v2_and_stream_refuse_too(http, guarded):
    row = good_row(guarded) | {"tenure": 99.0}
    answer = http.post("/invocations", json={"dataframe_records": [row]})
    assert answer.status_code == 400  # MLflow's scoring protocol answers bad input with 400
    assert "tenure=99 is above the declared maximum 72" in answer.text
    types = {"tenure": "FP64", "charges": "FP64", "support_calls": "INT64"}
    types |= {"plan": "BYTES", "signup_date": "BYTES"}
    v2 = {
        "inputs": [
            {"name": n, "datatype": t, "shape": [1], "data": [row[n]]} for n, t in types.items()
        ]
    }
    answer = http.post(f"/v2/models/{NAME}/infer", json=v2)
    assert answer.status_code == 422
    assert "tenure=99 is above the declared maximum 72" in answer.text
    body = orjson.dumps({"id": "a", "features": row}) + b"\n"
    body += orjson.dumps({"id": "b", "features": good_row(guarded)}) + b"\n"
    lines = [
        orjson.loads(x) for x in http.post("/predict/stream", content=body).content.splitlines()
    ]
    assert "tenure=99 is above the declared maximum 72" in lines[0]["detail"]
    assert "prediction" in lines[1]


def test_a_count_rule_accepts_counts_and_marks_the_log(http, guarded):
    def counted() -> float:
        text = http.get("/metrics").text
        return modelkit.sample(text, "mloop_feature_out_of_range_total", feature="charges")

    before = counted()
    row = good_row(guarded) | {"charges": 500.0}
    answer = http.post("/predict/batch", json={"instances": [row, good_row(guarded), row]})
    assert answer.status_code == 200, answer.text
    ids = [p["prediction_id"] for p in answer.json()["predictions"]]
    assert counted() == before + 2
    http.app.state.mloop.prediction_log.flush()
    database = open_database(guarded.settings)
    with database.session() as session:
        found = {
            r.id: r.out_of_range
            for r in session.scalars(select(PredictionRecord).where(PredictionRecord.id.in_(ids)))
        }
    assert found[ids[0]] == "charges=500 is above the declared maximum 120"
    assert found[ids[1]] is None
    assert found[ids[2]] == found[ids[0]]


def test_a_contract_that_does_not_parse_fails_the_load(guarded, tmp_path):
    import mlflow

    from mloop.errors import ValidationError
    from mloop.model.loader import load_contract

    bad = tmp_path / CONTRACT_ARTIFACT
    bad.write_text("features:\n  tenure: {type: number, mni: 0}\n")
    client = mlflow.MlflowClient()
    run = client.create_run(client.get_experiment_by_name("serving-tests").experiment_id)
    client.log_artifact(run.info.run_id, str(bad))
    with pytest.raises(ValidationError) as caught:
        load_contract(f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert "mni" in caught.value.message
