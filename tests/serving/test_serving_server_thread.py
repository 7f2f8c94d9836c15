"""ServerThread: a real uvicorn server in a thread, on a free port, with a clean shutdown."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mloop.errors import ServiceUnavailableError
from mloop.serving.server import ServerThread
from tests.support import modelkit


def tiny_app(events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        events.append("startup")
        yield
        events.append("shutdown")

    async def hello(_request):
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


def test_port_zero_binds_a_free_port_and_stop_runs_the_shutdown():
    events: list[str] = []
    with ServerThread(tiny_app(events)) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).text == "hi"
        assert server.is_alive()
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]
    assert not server.is_alive()


def test_a_port_in_use_fails_to_start_with_a_clear_error():
    with ServerThread(tiny_app([])) as first:
        second = ServerThread(tiny_app([]), port=first.port)
        with pytest.raises(ServiceUnavailableError, match="did not start"):
            second.start()


def test_the_port_of_a_server_not_started_is_an_error():
    with pytest.raises(ServiceUnavailableError, match="not started"):
        _ = ServerThread(tiny_app([])).url


def test_stopping_an_mloop_app_drains_the_prediction_log(trained):
    from sqlalchemy import func, select

    from mloop.serving.app import create_app
    from mloop.store import PredictionRecord, open_database

    database = open_database(trained.settings)

    def count() -> int:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(PredictionRecord))

    before = count()
    rows = modelkit.json_rows(trained.frame.head(20))
    with ServerThread(create_app("churn@production", trained.settings)) as server:
        response = httpx.post(f"{server.url}/predict/batch", json={"instances": rows})
        assert response.status_code == 200
    assert count() - before == 20
