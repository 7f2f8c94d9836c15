"""mloop.Client against real servers: answers, and the MloopError each failure raises."""

from __future__ import annotations

import socket

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mloop.client import Client
from mloop.errors import (
    ConflictError,
    MloopError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ValidationError,
)
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import modelkit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("client-home"))
    settings = settings.model_copy(update={"max_body_bytes": 2048})
    return modelkit.train_and_register(settings)


@pytest.fixture(scope="module")
def client(trained):
    app = create_app("churn@production", trained.settings, log_predictions=False)
    with ServerThread(app) as server, Client(server.url) as c:
        yield c


def test_happy_paths(client, trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    assert client.health()["model_loaded"] is True
    assert client.ready()["status"] == "ready"
    assert set(client.predict(rows[0])) >= {"prediction", "probability", "prediction_id"}
    assert client.predict_batch(rows)["total_count"] == 3
    assert client.model_info()["name"] == "churn"
    assert "model_predictions_total" in client.metrics()


def test_predictions_through_a_deployment(trained):
    from mloop.deploy.service import DeploymentService

    spec = {
        "name": "churn-ab",
        "policy": "ab",
        "variants": [
            {"name": "a", "model": "churn/1", "weight": 50},
            {"name": "b", "model": "churn@production", "weight": 50},
        ],
    }
    DeploymentService(trained.settings).apply(spec, actor="test")
    rows = modelkit.json_rows(trained.frame.head(3))
    app = create_app("churn@production", trained.settings, log_predictions=False)
    with ServerThread(app) as server, Client(server.url) as c:
        first = c.predict(rows[0], deployment="churn-ab", user_id="user-7")
        assert first["deployment"] == "churn-ab" and first["variant"] in {"a", "b"}
        again = c.predict(rows[1], deployment="churn-ab", user_id="user-7")
        assert again["variant"] == first["variant"]  # sticky per user
        other = "b" if first["variant"] == "a" else "a"
        assert c.predict(rows[0], deployment="churn-ab", variant=other)["variant"] == other
        batch = c.predict_batch(rows, deployment="churn-ab", variant="a")
        assert [r["variant"] for r in batch["predictions"]] == ["a", "a", "a"]
        assert "variant" not in c.predict(rows[0])  # plain /predict: the served model
        status = c.deployment("churn-ab")
        assert status["name"] == "churn-ab" and status["counts_source"] != "prediction log"
        with pytest.raises(NotFoundError):
            c.predict(rows[0], deployment="no-such-deployment")
        with pytest.raises(NotFoundError):
            c.predict(rows[0], deployment="churn-ab", variant="c")


def test_async_jobs_through_the_client(client, trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    queued = client.predict_async(rows)
    assert queued["status"] == "queued" and queued["job_id"]
    finished = client.wait_for_job(queued["job_id"], timeout=60)
    assert finished["status"] == "succeeded", finished
    assert finished["result"]["total_count"] == 3
    with pytest.raises(ConflictError):
        client.cancel_job(queued["job_id"])
    with pytest.raises(NotFoundError):
        client.job("no-such-job")
    with pytest.raises(ValidationError):
        client.predict_async([{**rows[0], "plan": 5}])


def test_a_bad_row_raises_validation_error_with_the_servers_detail(client, trained):
    row = modelkit.json_rows(trained.frame.head(1))[0]
    with pytest.raises(ValidationError) as info:
        client.predict({**row, "plan": 5})
    assert "feature 'plan' expects a string" in info.value.message
    assert "HTTP 422" in info.value.message
    with pytest.raises(ValidationError, match="missing feature") as info:
        client.predict({})
    assert info.value.hint.startswith("expected features:")


def test_a_body_over_the_limit_raises_payload_too_large(client, trained):
    rows = modelkit.json_rows(trained.frame.head(50))
    with pytest.raises(PayloadTooLargeError, match="over the limit of 2048 bytes"):
        client.predict_batch(rows)


def test_an_unknown_path_raises_not_found(client):
    with Client(client.url + "/v2") as wrong, pytest.raises(NotFoundError, match="no route"):
        wrong.health()


def test_a_server_without_a_model_raises_service_unavailable(trained):
    app = create_app("ghost@production", trained.settings, log_predictions=False)
    with ServerThread(app) as server, Client(server.url) as c:
        assert c.health()["model_loaded"] is False
        with pytest.raises(ServiceUnavailableError, match="ghost"):
            c.ready()
        with pytest.raises(ServiceUnavailableError, match="model not loaded"):
            c.predict({"tenure": 1.0})


@pytest.fixture(scope="module")
def status_server():
    """A plain Starlette app answering /status/{code} with mloop's error body."""

    async def status(request):
        code = int(request.path_params["code"])
        if request.query_params.get("plain"):
            return PlainTextResponse("upstream broke", status_code=code)
        return JSONResponse({"error": "X", "detail": f"said {code}", "hint": "h"}, code)

    app = Starlette(routes=[Route("/status/{code}", status)])
    with ServerThread(app) as server:
        yield server


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (422, ValidationError),
        (503, ServiceUnavailableError),
        (500, MloopError),
        (400, MloopError),
    ],
)
def test_each_status_maps_to_its_error(status_server, code, error):
    with Client(status_server.url) as c, pytest.raises(error) as info:
        c._request("GET", f"/status/{code}")
    assert type(info.value) is error
    assert info.value.message == f"said {code} (HTTP {code})"
    assert info.value.hint == "h"


def test_a_non_json_error_body_is_carried_as_text(status_server):
    with Client(status_server.url) as c, pytest.raises(MloopError, match="upstream broke"):
        c._request("GET", "/status/502?plain=1")


def test_an_unreachable_server_raises_service_unavailable_naming_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with Client(url, timeout=5) as c, pytest.raises(ServiceUnavailableError) as info:
        c.health()
    assert url in info.value.message
    assert "mloop serve" in info.value.hint
