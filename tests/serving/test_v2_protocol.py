"""The Open Inference Protocol (KServe V2) endpoints, driven by tritonclient's HTTP client."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.support import modelkit


@pytest.fixture(scope="module")
def client(live):
    c = triton.InferenceServerClient(live.url.removeprefix("http://"))
    yield c
    c.close()


def _inputs(frame, binary: bool = True) -> list:
    """One V2 input per column, with the datatype docs/serving.md lists for its type."""
    out = []
    for name, datatype in [
        ("tenure", "FP64"),
        ("charges", "FP64"),
        ("support_calls", "INT64"),
        ("plan", "BYTES"),
        ("signup_date", "BYTES"),
    ]:
        values = frame[name].to_numpy()
        values = values.astype(object) if datatype == "BYTES" else values
        tensor = triton.InferInput(name, [len(frame)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        out.append(tensor)
    return out


def test_health_and_metadata(client, live):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("churn")
    assert client.is_model_ready("churn", "1")
    assert not client.is_model_ready("other")
    assert not client.is_model_ready("churn", "7")
    meta = client.get_model_metadata("churn")
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("tenure", "FP64"),
        ("charges", "FP64"),
        ("support_calls", "INT64"),
        ("plan", "BYTES"),
        ("signup_date", "BYTES"),
    ]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities", "prediction_id"}
    assert client.get_server_metadata()["name"] == "mloop"
    assert httpx.get(f"{live.url}/v2/health/live").status_code == 200


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_the_model(client, trained, binary):
    head = trained.frame.head(12)  # holds NaN tenure: a missing value in an FP64 tensor
    result = client.infer("churn", _inputs(head, binary))
    expected = trained.pipeline.predict_proba(head)
    assert result.as_numpy("probabilities").tolist() == expected.tolist()
    assert result.as_numpy("label").tolist() == list(
        trained.pipeline.classes_[expected.argmax(axis=1)]
    )
    ids = result.as_numpy("prediction_id")
    assert len(ids) == 12 and len(set(ids.tolist())) == 12
    response = result.get_response()
    assert response["model_name"] == "churn" and response["model_version"] == "1"


def test_requested_outputs_only(client, trained):
    outputs = [triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("churn", _inputs(trained.frame.head(3)), outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None


def test_bad_requests_are_clear_errors(client, trained, live):
    head = trained.frame.head(2)
    inputs = _inputs(head)[:-1]  # signup_date missing
    with pytest.raises(InferenceServerException, match="missing input 'signup_date'"):
        client.infer("churn", inputs)
    wrong = _inputs(head)
    wrong[3] = triton.InferInput("plan", [2], "FP64")
    wrong[3].set_data_from_numpy(np.array([1.0, 2.0]))
    with pytest.raises(InferenceServerException, match="input 'plan' is declared FP64"):
        client.infer("churn", wrong)
    with pytest.raises(InferenceServerException, match="not served here"):
        client.infer("other", _inputs(head))
    raw = httpx.post(f"{live.url}/v2/models/churn/infer", content=b"{nope")
    assert raw.status_code == 422 and "malformed JSON" in raw.json()["error"]
    shape = httpx.post(
        f"{live.url}/v2/models/churn/infer",
        json={"inputs": [{"name": "tenure", "shape": [2, 3], "datatype": "FP64", "data": [1] * 6}]},
    )
    assert shape.status_code == 422 and "one column" in shape.json()["error"]


def test_v2_predictions_reach_the_prediction_log(client, live, trained):
    from mloop.store import PredictionRecord, open_database

    result = client.infer("churn", _inputs(trained.frame.head(2)))
    ids = result.as_numpy("prediction_id").tolist()
    ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
    live.app.state.mloop.prediction_log.flush()
    with open_database(trained.settings).session() as session:
        found = {r.id for r in session.query(PredictionRecord).filter(PredictionRecord.id.in_(ids))}
    assert found == set(ids)
    assert modelkit.NAME == "churn"
