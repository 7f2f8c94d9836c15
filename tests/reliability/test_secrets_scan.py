"""Secrets never leak: a real `mloop serve` (auth on) is used with every secret it knows (API
key, bearer token, JWT key, audit HMAC key, MLflow webhook secret, the alert webhook URL) and
with wrong ones; then its stderr, /metrics, every answer body and the audit trail are scanned."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from mloop.security.tokens import issue_token
from mloop.serving.mlflow_webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)
from tests.support import govkit, loopkit, modelkit
from tests.support.serverproc import served

JWT_SECRET = "jwt-" + "J" * 40
AUDIT_SECRET = "audit-" + "A" * 40
WEBHOOK_SECRET = "mlflowhook-" + "W" * 30
SLACK_PATH = "/services/T000/B000/slackpathsecretXYZ"


@pytest.fixture(scope="module")
def session(trained_home, tmp_path_factory):
    """Runs the session; returns (texts to scan, secrets that must not be in them)."""
    settings = trained_home.settings
    keys = govkit.add_people(settings)
    token = issue_token("root", JWT_SECRET.encode(), 600)
    row = modelkit.json_rows(trained_home.frame.head(1))[0]
    bodies: list[str] = []
    with loopkit.WebhookReceiver() as slack:
        env = {
            "MLOOP_AUTH": "on",
            "MLOOP_LOG_FORMAT": "json",
            "MLOOP_LOG_REQUESTS": "true",
            "MLOOP_LOG_LEVEL": "debug",
            "MLOOP_JWT_SECRET": JWT_SECRET,
            "MLOOP_AUDIT_SECRET": AUDIT_SECRET,
            "MLOOP_MODEL_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MLOOP_ALERT_SLACK_WEBHOOK_URL": slack.url.replace("/hook", SLACK_PATH),
            "MLOOP_WEBHOOK_ALLOW": "127.0.0.1",
        }
        folder = tmp_path_factory.mktemp("secrets")
        with served(settings, folder=folder, **env) as server, httpx.Client() as http:
            url = server.url

            def call(method, path, status, **kwargs):
                answer = http.request(method, url + path, **kwargs)
                bodies.append(answer.text + json.dumps(dict(answer.headers)))
                assert answer.status_code == status, (path, answer.text)

            predict = {"json": {"features": row}}
            call("POST", "/predict", 200, headers={"X-API-Key": keys["pred"]}, **predict)
            call("POST", "/predict", 200, headers={"Authorization": f"Bearer {token}"}, **predict)
            call("POST", "/predict", 403, headers={"X-API-Key": keys["eve"]}, **predict)
            wrong_key = keys["pred"][:-6] + "zzzzzz"
            call("POST", "/predict", 401, headers={"X-API-Key": wrong_key}, **predict)
            call("POST", "/predict", 401, headers={"Authorization": f"Bearer {token}x"}, **predict)
            call("GET", "/audit/verify", 200, headers={"X-API-Key": keys["carol"]})
            payload = json.dumps({"entity": "model_version", "data": {"name": "churn"}})
            stamp = str(int(time.time()))
            signed = {
                DELIVERY_HEADER: "d-1",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature(WEBHOOK_SECRET, "d-1", stamp, payload),
                "content-type": "application/json",
            }
            http.post(url + "/models/refresh", content=payload, headers=signed)
            forged = {**signed, SIGNATURE_HEADER: signature("not-it", "d-1", stamp, payload)}
            call("POST", "/models/refresh", 401, content=payload, headers=forged)
            alert = loopkit.alert_payload(fingerprint="secrets")
            call("POST", "/alerts/webhook", 200, headers={"X-API-Key": keys["bob"]}, json=alert)
            loopkit_wait = time.monotonic() + 30
            while not slack.received and time.monotonic() < loopkit_wait:
                time.sleep(0.1)
            assert slack.received, "the alert was not forwarded to the allowed local webhook"
            metrics = http.get(url + "/metrics", headers={"X-API-Key": keys["eve"]}).text
        stderr = server.stderr()
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as conn:
        audit = "\n".join(
            f"{r[0]} {r[1]} {r[2]} {r[3]}"
            for r in conn.execute("SELECT actor, action, target, detail FROM audit_log")
        )
    texts = {"stderr": stderr, "metrics": metrics, "bodies": "\n".join(bodies), "audit": audit}
    secrets = {
        "api key secret": [key.split("_", 2)[2] for key in keys.values()],
        "wrong api key": [wrong_key.split("_", 2)[2]],
        "token": [token, token.rsplit(".", 1)[1]],
        "jwt secret": [JWT_SECRET],
        "audit secret": [AUDIT_SECRET],
        "webhook secret": [WEBHOOK_SECRET],
        "alert webhook url": ["slackpathsecretXYZ"],
    }
    return texts, secrets


def test_the_session_left_evidence_to_scan(session):
    texts, _ = session
    assert "api.call" in texts["audit"] and "model_predictions_total" in texts["metrics"]
    assert "POST /predict 401" in texts["stderr"]


@pytest.mark.parametrize("where", ["stderr", "metrics", "bodies", "audit"])
def test_no_secret_appears(session, where):
    texts, secrets = session
    found = [name for name, values in secrets.items() for value in values if value in texts[where]]
    assert found == [], f"secrets in {where}: {found}"
