"""The console in-process (auth on, demo-like data): redirects, security headers, login and
logout, CSRF, a viewer refused every action, escaping, and 4xx pages for bad input.

Nothing here changes the demo data's state (the approval stays pending): the actions that do
are in test_web_actions.py, on their own data.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from mloop.governance.approvals import ApprovalService
from tests.console.conftest import (
    SCRIPT_NAME,
    csrf_of,
    login,
    login_token_of,
    password,
    post_login,
)

HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*(?:\bsrc=|type=\"application/json\"))[^>]*>")
EVENT_ATTRIBUTE = re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def pages(data) -> list[str]:
    return [
        "/ui/models",
        "/ui/models/churn",
        "/ui/models/churn/versions/1",
        "/ui/models/churn/versions/2",
        "/ui/models/churn/compare?a=1&b=2",
        f"/ui/models/{SCRIPT_NAME}",
        "/ui/approvals",
        f"/ui/approvals/{data.approval_id}",
        "/ui/audit",
        "/ui/audit?actor=alice",
        "/ui/audit?subject=churn",
        "/ui/deployments",
        "/ui/monitoring",
        "/ui/jobs",
    ]


def test_root_and_console_home_redirect_and_login_is_asked(console_http):
    console_http.cookies.clear()
    root = console_http.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    home = console_http.get("/ui/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/ui/models"
    page = console_http.get("/ui/models/churn?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/models/churn%3Fx%3D1"


def test_every_page_answers_with_the_security_headers_and_no_inline_code(
    console_http, console_data
):
    login(console_http, "viewer")
    for path in pages(console_data):
        answer = console_http.get(path)
        expected = 403 if path.startswith("/ui/jobs") else 200  # jobs need predictor, as GET /jobs
        assert answer.status_code == expected, (path, answer.text[-500:])
        for name, value in HEADERS.items():
            assert answer.headers[name] == value, (path, name)
        assert not INLINE_SCRIPT.search(answer.text), path
        assert not EVENT_ATTRIBUTE.search(answer.text), path
        assert "javascript:" not in answer.text, path
    others = [
        console_http.get("/", follow_redirects=False),
        console_http.get("/ui/login"),
        console_http.get("/ui/no-such-page"),
        console_http.get("/ui/static/console.css"),
    ]
    assert [a.status_code for a in others] == [307, 200, 404, 200]
    for answer in others:
        assert all(answer.headers[name] == value for name, value in HEADERS.items())


def test_static_files_and_plotly_come_from_the_server(console_http):
    js = console_http.get("/ui/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    plotly = console_http.get("/ui/static/plotly.min.js")
    assert plotly.status_code == 200 and b"plotly" in plotly.content[:2000].lower()
    assert "immutable" in plotly.headers["cache-control"]
    assert console_http.get("/ui/static/../app.py").status_code == 404


def test_login_with_a_password_or_an_api_key_sets_a_strict_session_cookie(
    console_http, console_data
):
    console_http.cookies.clear()
    answer = post_login(
        console_http,
        {"username": "approver", "password": password("approver"), "next": "/ui/audit"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/audit"
    cookie = answer.headers["set-cookie"]
    assert "mloop_session=" in cookie and "HttpOnly" in cookie and "Path=/ui" in cookie
    assert "samesite=strict" in cookie.lower() and "secure" not in cookie.lower()  # no TLS
    assert ">approver<" in console_http.get("/ui/models").text
    login(console_http, "bob", key=console_data.keys["bob"])
    events = [row["action"] for row in _audit(console_data)]
    assert events.count("console.login") >= 2


def test_a_bad_login_answers_401_with_one_message_for_every_cause(console_http):
    console_http.cookies.clear()
    texts = []
    for fields in (
        {"username": "viewer", "password": "wrong-password"},
        {"username": "nobody", "password": "whatever-password"},
        {"api_key": "mlk_abc_def"},
        {"username": "", "password": ""},
    ):
        answer = post_login(console_http, fields)
        assert answer.status_code == 401, fields
        assert "mloop_session" not in answer.headers.get("set-cookie", "")
        texts.append(re.search(r'role="alert">([^<]*)<', answer.text).group(1))
    assert set(texts) == {"unknown identity or wrong password or key"}


def test_login_never_redirects_off_the_console(console_http):
    console_http.cookies.clear()
    for target in ("https://evil.example/", "//evil.example/", "/predict"):
        answer = post_login(
            console_http, {"username": "viewer", "password": password("viewer"), "next": target}
        )
        assert answer.headers["location"] == "/ui/", target


def test_a_login_without_the_login_forms_token_and_cookie_is_refused(console_http):
    """Login CSRF: another site can post the form but has neither the token nor the cookie."""
    console_http.cookies.clear()
    fields = {"username": "viewer", "password": password("viewer")}
    bare = console_http.post("/ui/login", data=fields)
    assert bare.status_code == 403 and "Not allowed" in bare.text
    assert "CSRF token is missing or wrong" in bare.text and "mloop_session" not in bare.headers
    form = console_http.get("/ui/login")
    cookie = form.headers["set-cookie"]
    assert "mloop_login=" in cookie and "HttpOnly" in cookie and "Path=/ui/login" in cookie
    assert "samesite=strict" in cookie.lower()
    token, nonce = login_token_of(form.text), console_http.cookies["mloop_login"]
    for sent_cookie, sent_token in (
        (None, token),  # the token copied into a cross-site form: no cookie comes with it
        ("x" * 43, token),  # a cookie of the attacker's own choosing
        (nonce, "0" * 64),  # a forged token
        (nonce, ""),
    ):
        console_http.cookies.clear()
        if sent_cookie:
            console_http.cookies.set("mloop_login", sent_cookie, path="/ui/login")
        answer = console_http.post("/ui/login", data={**fields, "login_token": sent_token})
        assert answer.status_code == 403, (sent_cookie, sent_token)
        assert "mloop_session" not in answer.headers.get("set-cookie", "")
    console_http.cookies.set("mloop_login", nonce, path="/ui/login")
    done = console_http.post("/ui/login", data={**fields, "login_token": token})
    assert done.status_code == 303 and "mloop_session=" in done.headers["set-cookie"]
    assert 'mloop_login=""' in done.headers["set-cookie"]  # spent: the form starts afresh


def test_a_login_purges_expired_and_revoked_sessions(console_http, console_data):
    from sqlalchemy import select

    from mloop.security.sessions import SessionStore
    from mloop.store import open_database
    from mloop.store.console import ConsoleSessionRow

    store = SessionStore(open_database(console_data.settings))
    expired, _ = store.open("viewer", lifetime=timedelta(seconds=-1))
    revoked, _ = store.open("viewer")
    store.revoke(revoked)
    live, _ = store.open("viewer")
    login(console_http, "approver")
    with store.database.session() as session:
        kept = set(session.scalars(select(ConsoleSessionRow.id_sha256)))
    digest = {value: hashlib.sha256(value.encode()).hexdigest() for value in (expired, revoked)}
    assert digest[expired] not in kept and digest[revoked] not in kept
    assert store.lookup(live) is not None  # a live session stays, and works
    assert store.purge() == 0  # nothing ended is left behind
    store.open("viewer", lifetime=timedelta(seconds=-1))
    assert store.purge() == 1


def test_logout_revokes_the_session_server_side(console_http, console_data):
    csrf = login(console_http, "viewer")
    old = console_http.cookies.get("mloop_session")
    answer = console_http.post("/ui/logout", data={"csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    console_http.cookies.clear()
    console_http.cookies.set("mloop_session", old, path="/ui")
    again = console_http.get("/ui/models", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")
    assert "console.logout" in [row["action"] for row in _audit(console_data)]


def test_a_post_without_the_right_csrf_token_or_from_another_site_is_refused(console_http):
    csrf = login(console_http, "approver")
    for fields, headers in (
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": csrf}, {"origin": "https://evil.example"}),
    ):
        answer = console_http.post("/ui/audit/verify", data=fields, headers=headers)
        assert answer.status_code == 403, fields
        assert "CSRF" in answer.text or "cross-site" in answer.text
    assert console_http.post("/ui/audit/verify", data={"csrf_token": csrf}).status_code == 200


def test_a_viewer_sees_every_page_but_every_action_is_refused(console_http, console_data):
    csrf = login(console_http, "viewer")
    number = console_data.approval_id
    detail = console_http.get(f"/ui/approvals/{number}").text
    assert "You may not approve" in detail and "compliance" in detail
    for path, fields in (
        (f"/ui/approvals/{number}/approve", {"comment": "ok"}),
        (f"/ui/approvals/{number}/reject", {"reason": "no"}),
        ("/ui/audit/verify", {}),
    ):
        answer = console_http.post(path, data={"csrf_token": csrf, **fields})
        assert answer.status_code == 403, path
        assert "Not allowed" in answer.text
    for fmt in ("csv", "jsonl"):
        refused = console_http.get(f"/ui/audit/export.{fmt}")
        assert refused.status_code == 403 and "compliance" in refused.text
    assert ApprovalService(console_data.settings).get(number).status == "pending"


def test_the_requester_is_told_why_it_may_not_approve_its_own_request(console_http, console_data):
    login(console_http, "alice", key=console_data.keys["alice"])
    text = console_http.get(f"/ui/approvals/{console_data.approval_id}").text
    assert "may not approve its own request" in text


def test_user_strings_are_escaped(console_http, console_data):
    login(console_http, "viewer")
    models = console_http.get("/ui/models").text
    assert "&lt;script&gt;alert(1)&lt;script&gt;" in models
    assert "<script>alert" not in models and "<img src=x" not in models
    assert "&lt;img src=x onerror=" in models
    comment = console_http.get(f"/ui/approvals/{console_data.approval_id}").text
    assert "v2 &lt;em&gt;please&lt;/em&gt;" in comment


def test_bad_input_answers_a_4xx_page_not_a_500(console_http, console_data):
    csrf = login(console_http, "approver")
    for path, status in (
        ("/ui/models/churn/versions/abc", 422),
        ("/ui/models/churn/versions/99", 404),
        ("/ui/models/nope", 404),
        ("/ui/models/churn/compare?a=1", 422),
        ("/ui/approvals/xyz", 404),
        ("/ui/audit?before=x", 422),
        ("/ui/audit/export.xml", 422),
        ("/ui/models/churn/versions/2/plots/nope.png", 404),
    ):
        answer = console_http.get(path)
        assert answer.status_code == status, (path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), path
    empty_reason = console_http.post(
        f"/ui/approvals/{console_data.approval_id}/reject", data={"csrf_token": csrf}
    )
    assert empty_reason.status_code == 422 and "reason" in empty_reason.text
    too_big = console_http.post("/ui/audit/verify", data={"csrf_token": "x" * 70_000})
    assert too_big.status_code == 413


def test_audit_page_filters_and_pages_newest_first(console_http, console_data):
    login(console_http, "approver")
    text = console_http.get("/ui/audit?actor=alice").text
    seqs = [int(s) for s in re.findall(r'<tr id="row-(\d+)">', text)]
    assert seqs and seqs == sorted(seqs, reverse=True)
    assert "approval.submit" in text or "approval" in text
    csv_text = console_http.get("/ui/audit/export.csv?actor=alice").text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("seq,created_at,actor,action,target,detail")
    assert len(lines) - 1 == len(seqs) and all(",alice," in line for line in lines[1:])
    jsonl = console_http.get("/ui/audit/export.jsonl").text.strip().splitlines()
    assert len(jsonl) >= len(seqs)


def test_version_page_shows_signature_lineage_card_and_plots(console_http):
    login(console_http, "viewer")
    text = console_http.get("/ui/models/churn/versions/2").text
    assert "Signature inputs" in text and "tenure" in text
    assert "training data sha256" in text and "Owner" in text and "retention" in text
    for plot in re.findall(r'/plots/([^"]+)\.png"', text):
        image = console_http.get(f"/ui/models/churn/versions/2/plots/{plot}.png")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")


def test_compare_highlights_differences_and_charts_shared_metrics(console_http):
    login(console_http, "viewer")
    text = console_http.get("/ui/models/churn/compare?a=1&b=2").text
    assert 'class="diff"' in text
    assert 'data-chart="compare-metrics"' in text
    assert '<script type="application/json" id="compare-metrics">' in text


def _audit(data) -> list[dict]:
    from mloop.governance.audit import audit_log

    return list(audit_log(data.settings).rows())


@pytest.fixture
def viewer_csrf(console_http):
    return login(console_http, "viewer")


def test_pages_carry_the_users_csrf_token_in_every_form(console_http, viewer_csrf):
    text = console_http.get("/ui/audit").text
    assert csrf_of(text) == viewer_csrf


def test_every_console_post_route_checks_csrf_first(console_http, console_data):
    """Any form posted without its token (a cross-site form, a forged post) is a 403 page."""
    from mloop.security.access import api_routes
    from mloop.serving.console.headers import is_console

    app = console_http.app if hasattr(console_http, "app") else None
    if app is None:
        from mloop.serving.app import create_app

        app = create_app("churn@production", console_data.settings, log_predictions=False)
    login(console_http, "viewer")
    posts = [
        path
        for path, methods, _ in api_routes(app)
        if is_console(path) and "POST" in methods and path != "/ui/login"
    ]
    assert {"/ui/logout", "/ui/audit/verify"} <= set(posts)
    for path in posts:
        answer = console_http.post(re.sub(r"\{[^}]+\}", "x", path), data={"comment": "x"})
        assert answer.status_code == 403, (path, answer.status_code)


def test_the_console_is_not_in_the_openapi_schema(console_http):
    paths = console_http.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not [p for p in paths if p.startswith("/ui")]
    assert "/predict" in paths
