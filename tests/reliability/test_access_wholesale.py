"""Access, route by route: every protected route answers 401 without credentials and 403 to an
identity lacking its role, the role is the one in `security.permissions`, the open routes are
exactly the probes, metrics and docs, keys are stored hashed, and rate limits answer 429 with
Retry-After. The app runs in-process with auth on."""

from __future__ import annotations

import hashlib
import inspect
import re
import sqlite3

import pytest
from prometheus_client import CollectorRegistry

from mloop.monitoring.alerts import parse_payload
from mloop.monitoring.notify import Notifier
from mloop.security import keys as key_module
from mloop.security.access import Role, api_routes
from mloop.security.identities import Identity
from mloop.security.permissions import ACTIONS
from mloop.serving.app import create_app
from mloop.serving.console.headers import is_console
from tests.support import govkit, loopkit
from tests.support.apps import in_process

PROBES = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    # the Open Inference Protocol's liveness and readiness probes
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
}
DOCS = ("/openapi.json", "/docs", "/redoc")


@pytest.fixture(scope="module")
def secured(trained_home):
    settings = trained_home.settings.model_copy(update={"auth": "on", "metrics_public": False})
    keys = govkit.add_people(settings)
    app = create_app("churn@production", settings, log_predictions=False)
    with in_process(app) as http:
        yield app, http, keys, settings


def _routes(app) -> list[tuple[str, str, Role]]:
    """The API's routes; the web console (/ui, / redirects there) has its own session login
    and role checks, tested route by route in tests/console."""
    return sorted(
        (method, path, role)
        for path, methods, role in api_routes(app)
        if not is_console(path)
        for method in methods
    )


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _lacking(role: Role) -> str:
    """A person of govkit.PEOPLE without `role` (and not admin)."""
    for name, roles in govkit.PEOPLE.items():
        if not Identity(name, frozenset(roles)).holds(role):
            return name
    raise AssertionError(f"nobody lacks {role}")


def _call(http, method: str, path: str, key: str | None = None):
    headers = {"X-API-Key": key} if key else {}
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return http.request(method, _concrete(path), headers=headers, **body)


def test_every_protected_route_is_in_the_permission_table_with_its_role(secured):
    app = secured[0]
    table = {action.route: action.role for action in ACTIONS if action.route}
    protected = [(m, p, r) for m, p, r in _routes(app) if r is not Role.PUBLIC]
    assert len(protected) >= 40
    missing = [f"{m} {p}" for m, p, _ in protected if f"{m} {p}" not in table]
    assert missing == [], f"routes missing from security/permissions.py: {missing}"
    wrong = [(f"{m} {p}", r, table[f"{m} {p}"]) for m, p, r in protected if table[f"{m} {p}"] != r]
    assert wrong == [], f"route role differs from the permission table: {wrong}"


def test_the_unprotected_routes_are_exactly_the_probes_metrics_and_docs(secured):
    app, http, _, _ = secured
    public = {(m, p) for m, p, r in _routes(app) if r is Role.PUBLIC}
    assert public == PROBES
    assert (app.openapi_url, app.docs_url, app.redoc_url) == DOCS
    for path in DOCS:
        assert http.get(path).status_code == 200, path
    for method, path in PROBES - {("GET", "/metrics")}:
        assert _call(http, method, path).status_code not in (401, 403), path
    # /metrics is closed here (MLOOP_METRICS_PUBLIC=false), open to any identity
    assert http.get("/metrics").status_code == 401


def test_every_protected_route_is_401_without_credentials_and_403_without_its_role(secured):
    app, http, keys, _ = secured
    checked = 0
    for method, path, role in _routes(app):
        if role is Role.PUBLIC:
            continue
        anonymous = _call(http, method, path)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["request_id"] == anonymous.headers["x-request-id"]
        bad = _call(http, method, path, "mlk_000000000000_not-a-real-secret")
        assert bad.status_code == 401, (method, path, bad.text)
        if role is not Role.VIEWER:  # every identity is a viewer: nobody lacks it
            who = _lacking(role)
            refused = _call(http, method, path, keys[who])
            assert refused.status_code == 403, (method, path, who, refused.text)
            assert f"needs the role '{role.value}'" in refused.json()["detail"]
        allowed = _call(http, method, path, keys["root"])
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        checked += 1
    assert checked >= 40


class _BodyCounter:
    """The app, counting the request-body bytes it pulls from the client (ASGI `receive`)."""

    def __init__(self, app) -> None:
        self.app, self.state, self.read = app, app.state, 0

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


def test_every_protected_route_refuses_before_reading_the_body(trained_home):
    """A malformed JSON body just under MLOOP_MAX_BODY_BYTES: 401 without credentials and 403
    without the role (not 413 or 422), and not a byte of it read, on every route taking one.
    With the role, a body over the limit is refused (413) before it is read too."""
    limit = 1024 * 1024
    settings = trained_home.settings.model_copy(
        update={"auth": "on", "metrics_public": False, "max_body_bytes": limit}
    )
    keys = govkit.add_people(settings)
    app = create_app("churn@production", settings, log_predictions=False)
    counter = _BodyCounter(app)
    near_limit = b"{" + b" " * (limit - 64) + b"not json"
    json_header = {"content-type": "application/json"}
    checked = 0
    with in_process(counter) as http:

        def post(method: str, path: str, body: bytes, key: str | None = None):
            counter.read = 0
            headers = {**json_header, **({"X-API-Key": key} if key else {})}
            answer = http.request(method, _concrete(path), content=body, headers=headers)
            return answer, counter.read

        for method, path, role in _routes(app):
            if method not in ("POST", "PUT", "PATCH") or role is Role.PUBLIC:
                continue
            anonymous, read = post(method, path, near_limit)
            assert (anonymous.status_code, read) == (401, 0), (method, path, anonymous.text)
            if role is not Role.VIEWER:
                refused, read = post(method, path, near_limit, keys[_lacking(role)])
                assert (refused.status_code, read) == (403, 0), (method, path, refused.text)
            if path != "/predict/stream":  # a stream has no total limit: each line has one
                over, read = post(method, path, near_limit + b" " * 128, keys["root"])
                # 404: the route found no deployment `x` before it read the body
                assert (over.status_code in (404, 413), read) == (True, 0), (method, path)
            checked += 1
    assert checked >= 20


def test_keys_are_stored_as_sha256_only_and_compared_in_constant_time(secured):
    _, _, keys, settings = secured
    database = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        dump = "\n".join(
            repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')
        )
        stored = dict(conn.execute("SELECT key_id, secret_sha256 FROM api_keys"))
    for key in keys.values():
        key_id, secret = key.removeprefix("mlk_").split("_", 1)
        assert secret not in dump and key not in dump
        assert stored[key_id] == hashlib.sha256(secret.encode()).hexdigest()
    source = inspect.getsource(key_module.KeyStore.authenticate)
    assert "hmac.compare_digest(" in source


def test_a_spent_rate_budget_is_429_with_retry_after(trained_home):
    settings = trained_home.settings.model_copy(
        update={"auth": "on", "rate_limit": 0.5, "rate_limit_burst": 2}
    )
    keys = govkit.add_people(settings)
    with in_process(create_app("churn@production", settings, log_predictions=False)) as http:
        answers = [http.get("/model/info", headers={"X-API-Key": keys["eve"]}) for _ in range(4)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    limited = answers[-1]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit exceeded for identity 'eve'" in limited.json()["detail"]
    assert limited.json()["request_id"] == limited.headers["x-request-id"]


def test_a_route_checked_before_its_body_spends_one_token_per_call(trained_home):
    """The role check that ran before the body is not run again by the route's dependency."""
    settings = trained_home.settings.model_copy(
        update={"auth": "on", "rate_limit": 0.01, "rate_limit_burst": 2}
    )
    keys = govkit.add_people(settings)
    reject = {"json": {"reason": "why"}, "headers": {"X-API-Key": keys["carol"]}}
    with in_process(create_app("churn@production", settings, log_predictions=False)) as http:
        answers = [http.post("/approvals/x/reject", **reject).status_code for _ in range(3)]
    assert answers == [404, 404, 429]  # no request `x`: two calls answered, the third limited


@pytest.mark.parametrize(
    ("allow", "delivered"), [([], False), (["10.0.0.0/8"], False), (["127.0.0.0/8"], True)]
)
def test_alert_webhooks_reach_only_addresses_the_allow_list_admits(trained_home, allow, delivered):
    with loopkit.WebhookReceiver() as listener:
        settings = trained_home.settings.model_copy(
            update={"alert_slack_webhook_url": listener.url, "webhook_allow": allow}
        )
        notifier = Notifier(settings, CollectorRegistry(), backoff=0.01).start()
        notifier.submit(parse_payload(loopkit.alert_payload(fingerprint="egress")))
        notifier.flush()
        notifier.close()
    assert bool(listener.received) is delivered
    outcome = "sent" if delivered else "refused"
    assert notifier.sent.labels(channel="slack", outcome=outcome)._value.get() == 1
