"""Structured logs: a real `mloop serve` with MLOOP_LOG_FORMAT=json writes only JSON lines on
stderr, each request's lines carry its X-Request-ID (returned in the response, in the error
body and in the audit row), and a request line gives the model, version and latency."""

from __future__ import annotations

import json
import logging
import sqlite3

import httpx
import pytest

from mloop import logs
from tests.support import modelkit
from tests.support.serverproc import served
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def json_server(trained_home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    env = {"MLOOP_LOG_FORMAT": "json", "MLOOP_LOG_REQUESTS": "true", "MLOOP_AUTH": "off"}
    with served(trained_home.settings, folder=folder, **env) as server:
        yield server, trained_home


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _audit_details(settings) -> list[dict]:
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT detail FROM audit_log WHERE action = 'api.call'").fetchall()
    return [json.loads(row[0]) for row in rows]


def test_a_prediction_logs_one_json_line_with_request_id_model_version_and_latency(json_server):
    server, trained = json_server
    row = modelkit.json_rows(trained.frame.head(1))[0]
    answer = httpx.post(
        server.url + "/predict", json={"features": row}, headers={"X-Request-ID": "req-ok-1"}
    )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "req-ok-1"
    lines = wait_for(
        lambda: [x for x in _lines(server.stderr()) if x.get("request_id") == "req-ok-1"],
        "the request's log line",
    )
    line = lines[-1]
    assert {"timestamp", "level", "logger", "message"} <= set(line)
    assert line["logger"] == "mloop.request" and line["level"] == "info"
    assert line["message"] == "POST /predict 200"
    assert line["model"] == "churn" and line["version"] == trained.version
    assert line["latency_ms"] > 0


def test_every_stderr_line_is_json_with_the_four_fields(json_server):
    server, _ = json_server
    httpx.get(server.url + "/health")
    lines = _lines(server.stderr())  # raises on any line that is not JSON
    assert any(x["logger"].startswith("uvicorn") for x in lines)  # uvicorn's own lines too
    assert all({"timestamp", "level", "logger", "message"} <= set(x) for x in lines)


def test_an_error_names_the_request_id_in_body_header_log_and_audit(json_server):
    server, trained = json_server
    refused = httpx.post(
        server.url + "/predict", json={"features": {"nope": 1}}, headers={"X-Request-ID": "bad-7"}
    )
    assert refused.status_code in (400, 422)
    assert refused.json()["request_id"] == "bad-7" == refused.headers["x-request-id"]
    details = wait_for(
        lambda: [d for d in _audit_details(trained.settings) if d.get("request_id") == "bad-7"],
        "the audit row of the refused call",
    )
    assert details[0]["status"] == refused.status_code and details[0]["path"] == "/predict"
    wait_for(
        lambda: any(x.get("request_id") == "bad-7" for x in _lines(server.stderr())),
        "the refused call's log line",
    )


def test_an_unusable_request_id_is_replaced_by_a_new_one(json_server):
    server, _ = json_server
    answer = httpx.get(server.url + "/nope", headers={"X-Request-ID": "no spaces allowed!"})
    assert answer.status_code == 404
    rid = answer.headers["x-request-id"]
    assert rid != "no spaces allowed!" and len(rid) == 32
    assert answer.json()["request_id"] == rid


def test_text_format_names_the_request_and_both_formats_mask_secrets():
    record = logging.LogRecord("mloop.x", logging.WARNING, __file__, 1, "%s", None, None)
    record.args = ("key mlk_0123456789ab_S3cretS3cret and postgresql://u:pw123@db/x",)
    record.request_id = "r-1"
    text = logs.TextFormatter().format(record)
    assert " mloop.x [r-1] key mlk_***" in text and "S3cret" not in text and "pw123" not in text
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["request_id"] == "r-1" and "S3cret" not in line["message"]
    assert "pw123" not in line["message"]
