"""The fast path for POST /predict and /predict/batch answers exactly like FastAPI's routes.

Two live servers on the same model, one with the fast path and one without, get the same
requests (good rows, every kind of bad body, oversized bodies, bad headers) and must give the
same status and the same body, apart from per-request ids and latencies. The app's own
middleware still sees the fast-path requests.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from mloop.serving.app import create_app
from mloop.serving.fastpath import ServingApp
from mloop.serving.server import YOUNG_GC_THRESHOLD, ServerThread, tune_gc
from tests.support import modelkit

VOLATILE = {"prediction_id", "latency_ms", "total_latency_ms", "request_id"}  # differ per call


class _Recorder:
    """A user middleware noting (path, status) of every HTTP request it sees."""

    seen: list[tuple[str, int]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noting(message):
            if message["type"] == "http.response.start":
                _Recorder.seen.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting if scope["type"] == "http" else send)


@pytest.fixture(scope="module")
def pair(trained) -> Iterator[tuple[ServerThread, ServerThread]]:
    settings = trained.settings.model_copy(update={"max_body_bytes": 4096})
    fast = create_app("churn@production", settings, log_predictions=False)
    slow = create_app("churn@production", settings, log_predictions=False)
    assert isinstance(slow, ServingApp)
    slow.fast_path = False
    fast.add_middleware(_Recorder)
    with ServerThread(fast) as a, ServerThread(slow) as b:
        yield a, b


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _both(pair, path: str, content: bytes, headers: dict | None = None):
    answers = []
    for server in pair:
        answer = httpx.post(
            f"{server.url}{path}",
            content=content,
            headers={"content-type": "application/json", **(headers or {})},
        )
        answers.append(answer)
    return answers


ROWS = modelkit.json_rows(modelkit.make_frame(rows=3)[0])
CASES = [
    ("/predict", orjson.dumps({"features": ROWS[0]}), None),
    ("/predict", orjson.dumps({"features": [ROWS[1][c] for c in modelkit.COLUMNS]}), None),
    ("/predict", b"", None),
    ("/predict", b"{not json", None),
    ("/predict", b"[1, 2]", None),
    ("/predict", b'{"features": 3}', None),
    ("/predict", b'{"rows": {}}', None),
    ("/predict", orjson.dumps({"features": ROWS[0], "extra": 1}), None),
    ("/predict", orjson.dumps({"features": {**ROWS[0], "tenure": "many"}}), None),
    ("/predict", orjson.dumps({"features": {"tenure": 3}}), None),
    ("/predict", b'{"features": {"tenure": NaN}}', None),
    ("/predict", b'{"features": [' + b"1," * 3000 + b"1]}", None),
    ("/predict", orjson.dumps({"features": ROWS[0]}), {"x-request-timeout-ms": "soon"}),
    ("/predict/batch", orjson.dumps({"instances": ROWS}), None),
    ("/predict/batch", orjson.dumps({"instances": []}), None),
    ("/predict/batch", orjson.dumps({"instances": [ROWS[0], {"plan": 1}]}), None),
]


@pytest.mark.parametrize("path, body, headers", CASES)
def test_fast_path_answers_like_the_fastapi_route(pair, path, body, headers):
    fast, slow = _both(pair, path, body, headers)
    assert fast.status_code == slow.status_code
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert _strip(fast.json()) == _strip(slow.json())
    if fast.status_code >= 400:
        assert fast.status_code < 500, fast.text
        assert fast.json()["detail"]


def test_app_middleware_sees_fast_path_requests(pair):
    fast, _ = pair
    _Recorder.seen.clear()
    good = httpx.post(f"{fast.url}/predict", json={"features": ROWS[0]})
    bad = httpx.post(f"{fast.url}/predict", content=b"{", headers={"content-type": "x"})
    assert (good.status_code, bad.status_code) == (200, 422)
    assert _Recorder.seen == [("/predict", 200), ("/predict", 422)]


def test_other_methods_and_routes_still_go_through_fastapi(pair):
    fast, _ = pair
    wrong = httpx.get(f"{fast.url}/predict")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "MethodNotAllowed"
    assert httpx.get(f"{fast.url}/openapi.json").json()["paths"]["/predict"]["post"]


@pytest.fixture
def gc_threshold() -> Iterator[None]:
    """The interpreter's GC thresholds, put back after the test."""
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.parametrize(
    "configured, expected", [(700, YOUNG_GC_THRESHOLD), (50_000, 50_000), (0, 0)]
)
def test_a_serving_process_collects_young_objects_less_often(gc_threshold, configured, expected):
    """Raised from Python's default, never lowered, and a disabled GC stays disabled."""
    gc.set_threshold(configured, 10, 10)
    tune_gc()
    assert gc.get_threshold() == (expected, 10, 10)
