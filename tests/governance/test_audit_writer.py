"""The API-call audit writer and middleware on a real chain: batched appends that verify,
losses recorded, and answered prediction calls left to the prediction log when asked."""

from __future__ import annotations

import math
import random
import re
import threading
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mloop.governance.audit import AuditEvent, AuditLog, audit_log, entry
from mloop.governance.audit_writer import (
    AuditMiddleware,
    AuditWriter,
    Timestamps,
    _call_entry,
    _call_event,
)
from mloop.serving.server import ServerThread
from tests.support import govkit

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def chain(tmp_path):
    return audit_log(govkit.settings_at(tmp_path / "home"))


def test_calls_and_events_are_appended_in_order_and_the_chain_verifies(chain):
    writer = AuditWriter(chain, batch=3)
    for i in range(7):
        writer.submit_call((1_800_000_000.5 + i, "pred", "POST", "/predict", 200, 1.5, "::1", "ab"))
    writer.submit(AuditEvent("bob", "model.promote", "churn/2", {"stage": "Production"}))
    writer.close()
    rows = list(chain.rows())
    assert [r["action"] for r in rows] == ["api.call"] * 7 + ["model.promote"]
    first = rows[0]
    assert first["created_at"] == "2027-01-15T08:00:00.500000Z"
    assert first["target"] == "POST /predict" and first["actor"] == "pred"
    assert first["detail"] == {
        "method": "POST",
        "path": "/predict",
        "status": 200,
        "duration_ms": 1.5,
        "client": "::1",
        "input_sha256": "ab",
    }
    assert all(ISO.match(r["created_at"]) for r in rows)
    assert writer.written == 8
    assert chain.verify().ok


def test_a_full_queue_is_recorded_as_audit_dropped_even_at_close(chain):
    writer = AuditWriter(chain, max_queue=2)
    writer._queue.close()  # nothing is taken: the queue only refuses from now on
    writer.submit(AuditEvent("a", "api.call", "GET /x"))
    writer.submit(AuditEvent("a", "api.call", "GET /y"))
    writer.close()
    rows = list(chain.rows())
    assert [(r["action"], r["detail"]) for r in rows] == [("audit.dropped", {"events": 2})]
    assert chain.verify().ok


def _app(writer: AuditWriter, *, answered_predictions: bool) -> Starlette:
    async def ok(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def refused(_request: Request) -> JSONResponse:
        return JSONResponse({"error": "ValidationError"}, status_code=422)

    app = Starlette(
        routes=[
            Route("/predict", ok, methods=["POST"]),
            Route("/predict/batch", refused, methods=["POST"]),
            Route("/deployments/ab/predict", ok, methods=["POST"]),
            Route("/models/churn/promote", ok, methods=["POST"]),
        ]
    )
    app.add_middleware(AuditMiddleware, answered_predictions=answered_predictions)
    app.state.mloop_audit = writer
    return app


@pytest.mark.parametrize("answered", [True, False])
def test_answered_prediction_calls_are_audited_unless_switched_off(chain, answered):
    writer = AuditWriter(chain)
    with ServerThread(_app(writer, answered_predictions=answered)) as server:
        for path in ("/predict", "/predict/batch", "/deployments/ab/predict"):
            assert httpx.post(server.url + path, content=b"{}").status_code in (200, 422)
        assert httpx.post(server.url + "/models/churn/promote").status_code == 200
    writer.close()
    audited = [(r["target"], r["detail"]["status"]) for r in chain.rows()]
    refused_and_governance = [("POST /predict/batch", 422), ("POST /models/churn/promote", 200)]
    if answered:
        assert audited == [
            ("POST /predict", 200),
            ("POST /predict/batch", 422),
            ("POST /deployments/ab/predict", 200),
            ("POST /models/churn/promote", 200),
        ]
    else:
        assert audited == refused_and_governance
    digests = [r["detail"].get("input_sha256") for r in chain.rows()]
    assert digests[0] is not None  # prediction calls carry the body digest


def _strftime(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_call_times_are_formatted_as_strftime_would_across_seconds_and_rounding():
    base = 1_800_000_000
    edges = [
        base,
        base + 0.5,
        base + 0.0000005,  # rounds half to even, down
        base + 0.0000015,
        base + 0.9999994,
        base + 0.9999995,  # carries into the next second
        base + 0.99999999,
        base - 0.0000001,
        base + 1,
        base - 86_400.25,  # backwards in time: the cached second must not be reused
        0.0,
        1e-7,
        0.5e-6,  # exactly half a microsecond once multiplied: half to even
        1.5e-6,
        2.5e-6,
    ]
    rng = random.Random(7)
    spread = [base + rng.uniform(-5, 5) for _ in range(5000)]
    steady = [base + i * 0.000137 for i in range(20_000)]
    stamps = Timestamps()
    for at in edges + spread + steady + edges:
        assert stamps.iso(at) == _strftime(at), at


def test_api_calls_on_both_databases_verify_and_read_back(database):
    chain = AuditLog(database, b"q" * 32)
    writer = AuditWriter(chain, batch=4)
    calls = [
        (1_800_000_000.25, "anonymous", "POST", "/predict", 200, 1.234, "127.0.0.1", "ab" * 32),
        (1_800_000_000.5, "zoë", "GET", "/models/é\x7f\"'\\\t", 404, 0.5, None, None),
        (1_800_000_001.9999996, "svc", "POST", "/v2/models/m/infer", 500, 12.0, "::1", None),
    ] * 3
    for call in calls:
        writer.submit_call(call)
    writer.close()
    assert writer.written == len(calls) and writer.dropped == 0
    rows = list(chain.rows())
    assert len(rows) == len(calls)
    for row, (at, actor, method, path, status, duration, client, digest) in zip(
        rows, calls, strict=True
    ):
        assert row["created_at"] == _strftime(at)
        assert (row["actor"], row["action"], row["target"]) == (
            actor,
            "api.call",
            f"{method} {path}",
        )
        expected = {"method": method, "path": path, "status": status, "duration_ms": duration}
        expected["client"] = client
        if digest is not None:
            expected["input_sha256"] = digest
        assert row["detail"] == expected
    assert rows[2]["created_at"] == "2027-01-15T08:00:02.000000Z"  # rounded up
    assert chain.verify().ok


def test_call_rows_are_the_rows_of_the_general_path_and_odd_values_take_it(chain):
    """The API-call shortcut stores what `AuditLog.append` would for the same event; values
    the middleware never queues (NaN, str subclasses, lone surrogates) still verify."""

    class Text(str):
        pass

    stamps = Timestamps()
    plain = (1_800_000_000.25, "anonymous", "POST", "/predict", 200, 1.234, "::1", "ab", "r-1")
    odd = [
        (1_800_000_000.5, "a", "GET", "/x", 200, float("nan"), None, None, None),
        (1_800_000_000.5, Text("a"), "GET", "/x", 200, 0.5, None, None, None),
        (1_800_000_000.5, "a", "GET", "/\ud800", 200, 0.5, None, None, None),
        (1_800_000_000.5, "a" * 300, "GET", "/" + "p" * 600, 200, 0.5, "c", None),
    ]
    for call in [plain, *odd]:
        assert _call_entry(call, stamps) == entry(_call_event(call, stamps)), call
    writer = AuditWriter(chain, batch=2)
    for call in [plain, *odd]:
        writer.submit_call(call)
    writer.close()
    rows = list(chain.rows())
    assert rows[0]["detail"]["request_id"] == "r-1"
    assert math.isnan(rows[1]["detail"]["duration_ms"])  # written by json.dumps: NaN
    # no database stores a lone surrogate: the path keeps it as its escape
    assert rows[3]["target"] == "GET /\\ud800" and rows[3]["detail"]["path"] == "/\\ud800"
    assert len(rows[-1]["actor"]) == 128 and len(rows[-1]["target"]) == 512
    assert writer.written == 5 and writer.dropped == 0 and chain.verify().ok


def test_a_burst_from_many_threads_lands_whole_in_submission_order(chain):
    writer = AuditWriter(chain, batch=200, interval=0.01)

    def submit(thread: int) -> None:
        for i in range(500):
            at = 1_800_000_000 + i * 0.001
            writer.submit_call((at, f"t{thread}", "POST", f"/predict/{i}", 200, 0.5, None, "d"))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    rows = list(chain.rows())
    assert len(rows) == 2000 and writer.written == 2000 and writer.dropped == 0
    assert [r["seq"] for r in rows] == list(range(1, 2001))
    for n in range(4):  # each submitter's calls keep their order along the chain
        mine = [r["target"] for r in rows if r["actor"] == f"t{n}"]
        assert mine == [f"POST /predict/{i}" for i in range(500)]
    assert chain.verify().ok
