"""Every bad request gets its 4xx, as JSON naming what is wrong; never a 500."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import modelkit

MAX_BODY = 4096
MAX_ROWS = 5


@pytest.fixture(scope="module")
def http(trained):
    settings = trained.settings.model_copy(
        update={"max_body_bytes": MAX_BODY, "max_batch_rows": MAX_ROWS}
    )
    app = create_app("churn@production", settings, log_predictions=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture(scope="module")
def row(trained):
    return modelkit.json_rows(trained.frame.head(1))[0]


def post(http, path, body: bytes):
    return http.post(path, content=body, headers={"content-type": "application/json"})


def with_value(row, name, token: str) -> bytes:
    """The body {"features": row} with the value of `name` replaced by a raw JSON token."""
    body = orjson.dumps({"features": {**row, name: "__X__"}})
    return body.replace(b'"__X__"', token.encode())


CASES = [
    # (id, path, body builder, status, words the detail must contain)
    ("malformed JSON", "/predict", lambda r: b'{"features": {', 422, ["malformed JSON"]),
    ("empty body", "/predict", lambda r: b"", 422, ["malformed JSON", "empty"]),
    ("body not an object", "/predict", lambda r: b"[1, 2]", 422, ["JSON object", "an array"]),
    ("no features key", "/predict", lambda r: b'{"rows": []}', 422, ["no 'features' field"]),
    (
        "extra top-level field",
        "/predict",
        lambda r: orjson.dumps({"features": r, "debug": True}),
        422,
        ["unknown field 'debug'"],
    ),
    ("features a string", "/predict", lambda r: b'{"features": "x"}', 422, ["'features' must"]),
    (
        "missing feature",
        "/predict",
        lambda r: orjson.dumps({"features": {k: v for k, v in r.items() if k != "plan"}}),
        422,
        ["row 0", "missing feature 'plan'"],
    ),
    (
        "unknown feature",
        "/predict",
        lambda r: orjson.dumps({"features": {**r, "shoe_size": 42}}),
        422,
        ["row 0", "unknown feature 'shoe_size'"],
    ),
    (
        "string for a number",
        "/predict",
        lambda r: with_value(r, "support_calls", '"lots"'),
        422,
        ["row 0", "'support_calls'", "expects an integer", "'lots'"],
    ),
    (
        "bool as number",
        "/predict",
        lambda r: with_value(r, "tenure", "true"),
        422,
        ["row 0", "'tenure'", "expects a number", "boolean"],
    ),
    (
        "fraction for an integer",
        "/predict",
        lambda r: with_value(r, "support_calls", "2.5"),
        422,
        ["'support_calls'", "fraction"],
    ),
    ("NaN token", "/predict", lambda r: with_value(r, "tenure", "NaN"), 422, ["'tenure'", "NaN"]),
    (
        "NaN token comes before other problems of the row",
        "/predict",
        lambda r: b'{"features": {"charges": NaN}}',
        422,
        ["row 0", "feature 'charges' is NaN"],
    ),
    (
        "Infinity token",
        "/predict",
        lambda r: with_value(r, "charges", "Infinity"),
        422,
        ["row 0", "'charges'", "Infinity"],
    ),
    (
        "-Infinity token",
        "/predict",
        lambda r: with_value(r, "charges", "-Infinity"),
        422,
        ["'charges'", "-Infinity"],
    ),
    (
        "null on a required column",
        "/predict",
        lambda r: with_value(r, "plan", "null"),
        422,
        ["row 0", "feature 'plan' is required"],
    ),
    (
        "list of wrong length",
        "/predict",
        lambda r: orjson.dumps({"features": [1.0, 2.0]}),
        422,
        ["expected 5 values", "got 2"],
    ),
    ("empty batch", "/predict/batch", lambda r: b'{"instances": []}', 422, ["empty"]),
    (
        "instances not a list",
        "/predict/batch",
        lambda r: b'{"instances": {"a": 1}}',
        422,
        ["'instances' must be an array"],
    ),
    ("no instances key", "/predict/batch", lambda r: b'{"features": {}}', 422, ["'instances'"]),
    (
        "oversize batch",
        "/predict/batch",
        lambda r: orjson.dumps({"instances": [r] * (MAX_ROWS + 1)}),
        422,
        [f"{MAX_ROWS + 1} rows", f"limit of {MAX_ROWS}"],
    ),
    (
        "bad row deep in a batch",
        "/predict/batch",
        lambda r: orjson.dumps({"instances": [r, r, {**r, "plan": 7}]}),
        422,
        ["row 2", "'plan'", "expects a string"],
    ),
    (
        "NaN token in a batch row given as a list",
        "/predict/batch",
        lambda r: b'{"instances": [[1.0, NaN, 2, "basic", "2024-01-01"]]}',
        422,
        ["row 0", "'charges'", "NaN"],
    ),
    (
        "row neither object nor array",
        "/predict/batch",
        lambda r: b'{"instances": [3]}',
        422,
        ["row 0", "must be an object or an array"],
    ),
    (
        "oversize body",
        "/predict/batch",
        lambda r: orjson.dumps({"instances": [r] * 100}),
        413,
        ["over the limit of 4096 bytes"],
    ),
]


@pytest.mark.parametrize(
    ("path", "build", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_a_4xx_naming_the_problem(http, row, path, build, status, words):
    response = post(http, path, build(row))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] in ("ValidationError", "PayloadTooLargeError")
    for word in words:
        assert word in body["detail"], body["detail"]


def test_invalid_requests_are_counted_as_invalid_rows(http, row):
    def invalid() -> float:
        text = http.get("/metrics").text
        line = next(
            (
                ln
                for ln in text.splitlines()
                if ln.startswith(
                    'model_predictions_total{model_version="1",status="invalid",variant="default"}'
                )
            ),
            "x 0",
        )
        return float(line.split()[-1])

    before = invalid()
    post(http, "/predict/batch", orjson.dumps({"instances": [row, {**row, "plan": None}]}))
    post(http, "/predict", b"{")
    assert invalid() - before == 3


def test_unknown_route_is_a_json_404(http):
    response = http.get("/nope")
    assert response.status_code == 404
    body = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    assert body == {"error": "NotFoundError", "detail": "no route GET /nope"}


def test_wrong_method_is_a_json_405(http):
    response = http.get("/predict")
    assert response.status_code == 405
    assert response.json()["error"] == "MethodNotAllowed"


def test_declared_content_length_over_the_limit_is_413_before_reading(http):
    url = httpx.URL(str(http.base_url))
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY + 1}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"{}")  # the rest of the declared body never comes
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    assert f"{MAX_BODY + 1} bytes is over the limit".encode() in rest


def test_a_streamed_body_over_the_limit_is_413(http):
    def chunks():
        yield b'{"instances": ['
        for _ in range(400):  # 6.4 kB, no Content-Length (chunked)
            yield b'{"tenure": 1.0},'
        yield b"{}]}"

    response = http.post(
        "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "more than" in response.json()["detail"]


def test_a_model_failure_is_a_500_without_a_stack_trace(strict_model, caplog):
    app = create_app("strict@production", strict_model.settings, log_predictions=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        row = modelkit.json_rows(strict_model.frame.head(1))[0]
        assert client.post("/predict", json={"features": row}).status_code == 200
        response = client.post("/predict", json={"features": {**row, "plan": "platinum"}})
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "InternalError"
    assert "ValueError" in body["detail"] and "Traceback" not in body["detail"]
    assert (
        'model_predictions_total{model_version="1",status="error",variant="default"} 1.0' in metrics
    )
    assert any(r.exc_info for r in caplog.records if r.name == "mloop.serving")
