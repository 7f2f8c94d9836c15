"""Auth on the serving app: 401 for missing, bad, revoked, expired or tampered credentials, 403
for the wrong role, open probes, rate limits with Retry-After, and audited API calls.

The app runs in-process; the Python client's test runs it on a real server."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from mloop.governance.audit import audit_log
from mloop.security.auth import auth_enabled, is_loopback
from mloop.security.secrets import JWT_KEY_FILE, server_secret
from mloop.security.tokens import issue_token
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.support import govkit, modelkit
from tests.support.apps import in_process

ROW = None


def _row():
    return modelkit.json_rows(modelkit.make_frame(rows=3)[0])[0]


@pytest.fixture(scope="module")
def server(secured):
    home, keys = secured
    settings = govkit.settings_at(home, auth="on", metrics_public=False)
    with in_process(create_app("churn@production", settings)) as http:
        yield http, settings, keys


def _post(http, headers=None):
    return http.post("/predict", json={"features": _row()}, headers=headers or {})


def test_probes_stay_open_and_metrics_can_be_closed(server):
    running, _settings, keys = server
    assert running.get("/health").status_code == 200
    assert running.get("/ready").status_code == 200
    closed = running.get("/metrics")
    assert closed.status_code == 401
    opened = running.get("/metrics", headers={"X-API-Key": keys["eve"]})
    assert opened.status_code == 200


def test_missing_credentials_are_401_with_www_authenticate(server):
    running, _, _ = server
    answer = _post(running)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "needs credentials" in answer.json()["detail"]


@pytest.mark.parametrize(
    "headers, message",
    [
        ({"X-API-Key": "mlk_000000000000_nope"}, "invalid API key"),
        ({"X-API-Key": "not-a-key"}, "malformed API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unsupported Authorization header"),
        ({"Authorization": "Bearer abc.def.ghi"}, "invalid token"),
    ],
)
def test_bad_credentials_are_401(server, headers, message):
    running, _, _ = server
    answer = _post(running, headers)
    assert answer.status_code == 401
    assert message in answer.json()["detail"]


def test_api_key_in_header_or_bearer_and_role_checks(server):
    running, _, keys = server
    assert _post(running, {"X-API-Key": keys["pred"]}).status_code == 200
    assert _post(running, {"Authorization": f"Bearer {keys['pred']}"}).status_code == 200
    assert _post(running, {"X-API-Key": keys["root"]}).status_code == 200  # admin holds all
    denied = _post(running, {"X-API-Key": keys["eve"]})
    assert denied.status_code == 403
    assert "needs the role 'predictor'" in denied.json()["detail"]
    info = running.get("/model/info", headers={"X-API-Key": keys["bob"]})
    assert info.status_code == 200  # every identity may read


def test_tokens_valid_expired_and_tampered(server):
    running, settings, _ = server
    secret = server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE)
    good = issue_token("pred", secret, 60)
    assert _post(running, {"Authorization": f"Bearer {good}"}).status_code == 200
    expired = issue_token("pred", secret, 10, now=time.time() - 3600)
    answer = _post(running, {"Authorization": f"Bearer {expired}"})
    assert (answer.status_code, answer.json()["detail"]) == (401, "token expired")
    head, body, signature = good.split(".")
    tampered = f"{head}.{body[:-2]}{'AA' if body[-2:] != 'AA' else 'BB'}.{signature}"
    answer = _post(running, {"Authorization": f"Bearer {tampered}"})
    assert answer.status_code == 401
    forged = issue_token("root", b"another secret " * 4, 60)
    answer = _post(running, {"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401 and "signature is invalid" in answer.json()["detail"]
    unknown = issue_token("nobody", secret, 60)
    assert _post(running, {"Authorization": f"Bearer {unknown}"}).status_code == 401


def test_revoked_key_and_disabled_identity_stop_working(secured):
    from mloop.security.identities import IdentityStore
    from mloop.security.keys import KeyStore
    from mloop.store import open_database

    home, _ = secured
    settings = govkit.settings_at(home, auth="on")
    database = open_database(settings)
    IdentityStore(database).add("temp", ["predictor"], actor="test")
    key, info = KeyStore(database).create("temp", actor="test")
    other, _ = KeyStore(database).create("temp", actor="test")
    with in_process(create_app("churn@production", settings)) as running:
        KeyStore(database).revoke(info.key_id, actor="test")
        answer = _post(running, {"X-API-Key": key})
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
        IdentityStore(database).disable("temp", actor="test")
        answer = _post(running, {"X-API-Key": other})
        assert answer.status_code == 401 and "disabled" in answer.json()["detail"]


def test_api_calls_are_audited_with_identity_and_input_digest(secured):
    home, keys = secured
    settings = govkit.settings_at(home, auth="on")
    log = audit_log(settings)
    before = log.head()[0]
    body = b'{"features": ' + httpx.Request("POST", "/", json=_row()).content + b"}"
    with in_process(create_app("churn@production", settings)) as running:
        answer = running.post(
            "/predict",
            content=body,
            headers={"X-API-Key": keys["pred"], "content-type": "application/json"},
        )
        assert answer.status_code == 200
        assert _post(running).status_code == 401
    # the server stopped cleanly: every call was flushed to the chain
    calls = [r for r in log.rows(action="api.call") if r["seq"] > before]
    assert len(calls) == 2
    ok, refused = calls
    assert ok["actor"] == "pred" and ok["detail"]["status"] == 200
    assert ok["detail"]["input_sha256"] == hashlib.sha256(body).hexdigest()
    assert ok["target"] == "POST /predict" and ok["detail"]["duration_ms"] > 0
    assert refused["actor"] == "anonymous" and refused["detail"]["status"] == 401
    assert log.verify().ok


def test_local_rate_limit_answers_429_with_retry_after(secured):
    home, keys = secured
    settings = govkit.settings_at(home, auth="on", rate_limit=0.01, rate_limit_burst=2)
    with in_process(create_app("churn@production", settings)) as running:
        codes = [_post(running, {"X-API-Key": keys["pred"]}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = _post(running, {"X-API-Key": keys["pred"]})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit exceeded for identity 'pred'" in limited.json()["detail"]
        # the budget is per identity: another one still has its own
        assert _post(running, {"X-API-Key": keys["root"]}).status_code == 200


def test_redis_rate_limit_is_shared_by_replicas(secured, redis_url):
    """One budget of 3 across two replicas (refilled once in 100 s, so a slow machine does
    not earn a token back between the calls)."""
    home, keys = secured
    settings = govkit.settings_at(
        home, auth="on", rate_limit=0.01, rate_limit_burst=3, rate_limit_url=redis_url
    )
    with (
        in_process(create_app("churn@production", settings)) as first,
        in_process(create_app("churn@production", settings)) as second,
    ):
        codes = [
            _post(replica, {"X-API-Key": keys["pred"]}).status_code
            for replica in (first, second, first, second)
        ]
    assert codes == [200, 200, 200, 429]


def test_rate_limit_without_auth_is_per_client(secured):
    home, _ = secured
    settings = govkit.settings_at(home, auth="off", rate_limit=0.01, rate_limit_burst=1)
    with in_process(create_app("churn@production", settings)) as running:
        assert [_post(running).status_code for _ in range(2)] == [200, 429]


def test_auth_auto_follows_the_bind_address(secured):
    home, _ = secured
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert auth_enabled(govkit.settings_at(home, host="0.0.0.0"))
    assert not auth_enabled(govkit.settings_at(home, host="127.0.0.1"))
    assert auth_enabled(govkit.settings_at(home, host="127.0.0.1", auth="on"))
    assert not auth_enabled(govkit.settings_at(home, host="0.0.0.0", auth="off"))


def test_python_client_sends_credentials_and_maps_auth_errors(server, monkeypatch):
    from mloop.client import Client
    from mloop.errors import AuthenticationError, PermissionDeniedError

    _, settings, keys = server
    monkeypatch.delenv("MLOOP_API_KEY", raising=False)
    monkeypatch.delenv("MLOOP_TOKEN", raising=False)
    secret = server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE)
    token = issue_token("pred", secret, 60)
    # mloop.Client speaks to a URL: this test runs auth end to end on a real server.
    with ServerThread(create_app("churn@production", settings)) as running:
        with Client(running.url) as anonymous, pytest.raises(AuthenticationError):
            anonymous.predict(_row())
        with Client(running.url, api_key=keys["pred"]) as keyed:
            assert keyed.predict(_row())["prediction_id"]
        with Client(running.url, token=token) as bearer:
            assert bearer.predict(_row())["prediction_id"]
        monkeypatch.setenv("MLOOP_API_KEY", keys["eve"])
        with Client(running.url) as viewer, pytest.raises(PermissionDeniedError):
            viewer.predict(_row())
