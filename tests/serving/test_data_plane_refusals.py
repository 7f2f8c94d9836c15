"""Data-plane inputs the docs say are refused: a 4xx naming the problem, never accepted."""

from __future__ import annotations

import orjson
import pytest

from mloop.serving.app import create_app
from tests.support import modelkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def http(trained):
    with in_process(create_app("churn@production", trained.settings)) as client:
        yield client


def _v2(frame, **datatypes):
    types = {"tenure": "FP64", "charges": "FP64", "support_calls": "INT64"}
    types |= {"plan": "BYTES", "signup_date": "BYTES"} | datatypes
    return {
        "inputs": [
            {"name": n, "datatype": t, "shape": [len(frame)], "data": frame[n].tolist()}
            for n, t in types.items()
        ]
    }


def test_a_v2_input_declared_bytes_for_a_number_is_refused(http, trained):
    frame = trained.frame.head(2).fillna(0)
    good = http.post("/v2/models/churn/infer", json=_v2(frame))
    assert good.status_code == 200, good.text
    answer = http.post("/v2/models/churn/infer", json=_v2(frame, tenure="BYTES"))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert "input 'tenure' is declared BYTES" in error and "double" in error
    answer = http.post("/v2/models/churn/infer", json=_v2(frame, plan="FP64"))
    assert answer.status_code == 422 and "input 'plan' is declared FP64" in answer.json()["error"]


def test_refreshing_a_model_this_server_does_not_serve_is_a_404(http):
    answer = http.post("/models/refresh", json={"model": "nope"})
    assert answer.status_code == 404
    assert "'nope'" in answer.json()["detail"] and "churn" in answer.json()["hint"]
    assert http.post("/models/refresh", json={"model": "churn"}).status_code == 200
    assert http.post("/models/refresh").status_code == 200


def test_a_stream_line_with_a_wrong_type_names_it_before_missing_features(http, trained):
    row = modelkit.json_rows(trained.frame.head(1))[0]
    body = orjson.dumps({"id": "c-2", "features": {"tenure": "x"}}) + b"\n"
    body += orjson.dumps({"id": "c-3", "features": row}) + b"\n"
    answer = http.post("/predict/stream", content=body)
    out = [orjson.loads(line) for line in answer.content.splitlines()]
    assert out[0]["detail"].startswith(
        "row 0: feature 'tenure' expects a number, got a string ('x'); missing feature"
    )
    assert "prediction" in out[1]
