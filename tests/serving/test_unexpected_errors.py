"""Every prediction route answers a failing model, and any unexpected exception, with a 500
JSON `{"error", "request_id"}`, logged with its traceback: fast path and standard path alike."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import httpx
import mlflow
import orjson
import pandas as pd
import pytest
from mlflow.models import infer_signature
from starlette.requests import Request
from starlette.responses import Response

from mloop.deploy.service import DeploymentService
from mloop.registry.tracking import configure_mlflow
from mloop.security.access import Role, requires
from mloop.serving.app import create_app
from mloop.serving.fastpath import ServingApp
from mloop.serving.routes import FAST_DATA_PLANE
from mloop.serving.server import ServerThread
from tests.support import modelkit

TRIGGER = 999  # support_calls value on which the failing model raises


class FailsOnTrigger(mlflow.pyfunc.PythonModel):
    """Answers 0 for every row, except it raises on rows with support_calls == TRIGGER (so the
    warm-up on the input example passes and the server serves it)."""

    def predict(self, context, model_input: pd.DataFrame, params=None):
        if (model_input["support_calls"] == TRIGGER).any():
            raise RuntimeError("the failing model fails on purpose")
        return [0] * len(model_input)


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> modelkit.TrainedModel:
    """`failing@production` on its own home: a real MLflow pyfunc whose predict raises."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("failing-home"))
    configure_mlflow(settings)
    frame, y = modelkit.make_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=FailsOnTrigger(),
                signature=infer_signature(frame, y),
                input_example=frame.head(3),
                registered_model_name="failing",
                pip_requirements=["pandas"],
            )
    mlflow.MlflowClient().set_registered_model_alias(
        "failing", "production", str(info.registered_model_version)
    )
    DeploymentService(settings).apply(
        {"name": "failing-dep", "variants": [{"name": "main", "model": "failing@production"}]},
        "test",
    )
    return modelkit.TrainedModel(settings, "failing", "1", None, frame)


async def _explode(request: Request) -> Response:
    raise RuntimeError("a bug on purpose")


def _app(settings, *, fast: bool) -> ServingApp:
    app = create_app("failing@production", settings, log_predictions=False)
    app.fast_path = fast
    app.add_api_route(  # a data-plane route with a bug, declared like the real ones
        "/predict/explode",
        _explode,
        methods=["POST"],
        dependencies=[requires(Role.PREDICTOR)],
        openapi_extra=FAST_DATA_PLANE,
    )
    return app


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "standard-path"])
def server(request, failing) -> Iterator[ServerThread]:
    with ServerThread(_app(failing.settings, fast=request.param)) as running:
        yield running


def _row() -> dict:
    row = modelkit.json_rows(modelkit.make_frame(3)[0])[1]
    row["support_calls"] = TRIGGER
    return row


def _assert_500(answer: httpx.Response) -> str:
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] and body["request_id"]
    assert "fails on purpose" not in answer.text and "Traceback" not in answer.text
    return body["request_id"]


def test_the_fast_path_is_on_or_off(server):
    fast = {path for path, _, _ in server.app.fast_routes()}
    assert {"/predict", "/predict/batch", "/predict/explode"} <= fast
    assert "/invocations" not in fast and "/predict/stream" not in fast


@pytest.mark.parametrize(
    "path, body",
    [
        ("/predict", lambda row: {"features": row}),
        ("/predict/batch", lambda row: {"instances": [row, row]}),
        ("/invocations", lambda row: {"dataframe_records": [row]}),
        ("/deployments/failing-dep/predict", lambda row: {"features": row}),
        (
            "/v2/models/failing/infer",
            lambda row: {
                "inputs": [
                    {
                        "name": name,
                        "shape": [1],
                        "datatype": "INT64"
                        if name == "support_calls"
                        else "FP64"
                        if isinstance(value, float)
                        else "BYTES",
                        "data": [value],
                    }
                    for name, value in row.items()
                ]
            },
        ),
    ],
)
def test_a_failing_model_answers_500_with_a_request_id(server, path, body, caplog):
    with caplog.at_level(logging.ERROR, logger="mloop.serving"):
        answer = httpx.post(f"{server.url}{path}", json=body(_row()), timeout=60)
    rid = _assert_500(answer)
    logged = [r for r in caplog.records if r.name == "mloop.serving"]
    assert any(r.exc_info and "fails on purpose" in str(r.exc_info[1]) for r in logged)
    assert any(rid in r.getMessage() for r in logged)


def test_a_streamed_line_of_a_failing_model_says_so(server):
    lines = orjson.dumps({"id": "a", "features": _row()}) + b"\n"
    answer = httpx.post(f"{server.url}/predict/stream", content=lines, timeout=60)
    out = [orjson.loads(line) for line in answer.content.splitlines()]
    assert out[0]["id"] == "a" and out[0]["error"]


def test_an_unexpected_exception_answers_500_with_the_clients_request_id(server, caplog):
    with caplog.at_level(logging.ERROR, logger="mloop.serving"):
        answer = httpx.post(
            f"{server.url}/predict/explode", content=b"{}", headers={"x-request-id": "abc-123"}
        )
    assert _assert_500(answer) == "abc-123"
    (record,) = [r for r in caplog.records if "abc-123" in r.getMessage()]
    assert record.exc_info is not None and "a bug on purpose" in str(record.exc_info[1])
