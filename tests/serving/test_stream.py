"""`POST /predict/stream`: one output line per input line, in order, as input arrives."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import modelkit


def _lines(rows, ids) -> bytes:
    return b"".join(
        orjson.dumps({"id": i, "features": r}) + b"\n" for i, r in zip(ids, rows, strict=True)
    )


def test_every_line_is_answered_in_order_with_its_id(live, trained):
    head = trained.frame.head(30)
    rows = modelkit.json_rows(head)
    body = _lines(rows, [f"c-{i}" for i in range(30)])
    answer = httpx.post(f"{live.url}/predict/stream", content=body, timeout=60)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    out = [orjson.loads(line) for line in answer.content.splitlines()]
    expected = trained.pipeline.predict_proba(head)
    assert [o["id"] for o in out] == [f"c-{i}" for i in range(30)]
    assert [o["probability"] for o in out] == pytest.approx(expected.max(axis=1).tolist())
    assert len({o["prediction_id"] for o in out}) == 30


def test_a_bad_line_gets_an_error_line_never_silence(live, trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    body = (
        orjson.dumps({"id": "a", "features": rows[0]})
        + b"\n{not json\n"
        + orjson.dumps({"id": "b", "features": {**rows[1], "plan": 7}})
        + b"\n\n"  # an empty line is skipped, not answered
        + orjson.dumps({"id": "c", "features": rows[2], "extra": 1})
        + b"\n"
        + orjson.dumps([1, 2])
        + b"\n"
        + orjson.dumps({"features": rows[2]})  # no id: the line number, no final newline
    )
    answer = httpx.post(f"{live.url}/predict/stream", content=body, timeout=60)
    out = [orjson.loads(line) for line in answer.content.splitlines()]
    assert [o["id"] for o in out] == ["a", 2, "b", "c", 5, 6]
    assert "prediction" in out[0] and "prediction" in out[5]
    assert out[1]["error"] == "ValidationError" and "malformed JSON" in out[1]["detail"]
    assert out[2]["detail"] == "row 0: feature 'plan' expects a string, got a number (7)"
    assert "unknown field 'extra'" in out[3]["detail"]
    assert "must be an object" in out[4]["detail"]


def test_answers_flow_while_the_request_is_still_open(live, trained):
    """A client sends one line, reads its answer, then sends the next, on one request."""
    rows = modelkit.json_rows(trained.frame.head(3))
    with socket.create_connection((live.host, live.port), timeout=30) as sock:
        sock.sendall(
            b"POST /predict/stream HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        reader = sock.makefile("rb")
        status = reader.readline()
        assert b"200" in status
        while reader.readline() not in (b"\r\n", b""):
            pass  # headers
        for i, row in enumerate(rows):
            line = orjson.dumps({"id": i, "features": row}) + b"\n"
            sock.sendall(b"%x\r\n%s\r\n" % (len(line), line))
            size = int(reader.readline().strip(), 16)  # one chunk back before we send more
            answer = orjson.loads(reader.read(size))
            reader.readline()
            assert answer["id"] == i and "prediction" in answer
        sock.sendall(b"0\r\n\r\n")
        assert int(reader.readline().strip(), 16) == 0


def test_an_over_long_line_is_an_error_line_and_the_stream_goes_on(trained):
    settings = trained.settings.model_copy(update={"max_body_bytes": 1024})
    app = create_app("churn@production", settings, log_predictions=False)
    rows = modelkit.json_rows(trained.frame.head(2))
    body = (
        orjson.dumps({"id": "first", "features": rows[0]})
        + b"\n"
        + b'{"id": "long", "pad": "'
        + b"x" * 5000
        + b'"}\n'
        + orjson.dumps({"id": "last", "features": rows[1]})
        + b"\n"
    )
    with ServerThread(app) as server:
        answer = httpx.post(f"{server.url}/predict/stream", content=body, timeout=60)
    out = [orjson.loads(line) for line in answer.content.splitlines()]
    assert out[0]["id"] == "first" and "prediction" in out[0]
    assert out[1]["error"] == "PayloadTooLargeError" and "limit of 1024 bytes" in out[1]["detail"]
    assert out[2]["id"] == "last" and "prediction" in out[2]


def test_stream_rows_reach_the_prediction_log(live, trained):
    from mloop.store import PredictionRecord, open_database

    rows = modelkit.json_rows(trained.frame.head(4))
    answer = httpx.post(f"{live.url}/predict/stream", content=_lines(rows, range(4)), timeout=60)
    ids = [orjson.loads(line)["prediction_id"] for line in answer.content.splitlines()]
    live.app.state.mloop.prediction_log.flush()
    with open_database(trained.settings).session() as session:
        found = {r.id for r in session.query(PredictionRecord).filter(PredictionRecord.id.in_(ids))}
    assert found == set(ids)
