"""Approvals, promotion and the audit trail over REST on a real server with auth on; the
same refusals as the CLI (409 without approval), the bad-input list, and the hot swap."""

from __future__ import annotations

import httpx
import pytest

from mloop.governance.cards import write_card
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread


@pytest.fixture(scope="module")
def api(governed, tmp_path_factory):
    settings, keys = governed
    settings = settings.model_copy(update={"auth": "on"})
    write_card(
        settings,
        "churn/2",
        tmp_path_factory.mktemp("card"),
        owner="alice",
        intended_use="retention",
    )
    with ServerThread(create_app("churn@production", settings)) as server:

        def call(method: str, path: str, who: str | None = None, **kwargs) -> httpx.Response:
            headers = {"X-API-Key": keys[who]} if who else {}
            return httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)

        yield call


def test_promotion_needs_an_approval_over_rest_too(api):
    answer = api("POST", "/models/churn/versions/2/promote", "bob", json={"stage": "Production"})
    assert answer.status_code == 409
    assert "requires an approved request" in answer.json()["detail"]
    assert (
        api(
            "POST", "/models/churn/versions/2/promote", "eve", json={"stage": "Production"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        (
            "/approvals",
            {"model": "nope", "version": "1", "stage": "Production"},
            404,
            "registered model 'nope' not found",
        ),
        (
            "/approvals",
            {"model": "churn", "version": "7", "stage": "Production"},
            404,
            "version 7 of model 'churn' not found",
        ),
        (
            "/approvals",
            {"model": "churn", "version": "2", "stage": "Live"},
            404,
            "unknown stage 'Live'",
        ),
        ("/approvals/999/approve", {}, 404, "approval request 999 not found"),
        ("/approvals/abc/reject", {"reason": "x"}, 404, "approval request 'abc' not found"),
        ("/models/churn/versions/2/promote", {"stage": "Gold"}, 404, "unknown stage 'Gold'"),
        ("/approvals", {"model": "churn"}, 422, "version"),
        # a number is a version too (issue 20): it reaches the registry, not a type error
        (
            "/approvals",
            {"model": "nope", "version": 2, "stage": "Production"},
            404,
            "registered model 'nope' not found",
        ),
        ("/approvals/1/reject", None, 422, "a rejection needs a reason"),
    ],
)
def test_bad_input(api, path, body, status, message):
    who = "bob" if "promote" in path or "approve" in path or "reject" in path else "alice"
    answer = api("POST", path, who, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_submit_approve_promote_and_hot_swap(api):
    assert api("GET", "/model/info", "eve").json()["version"] == "1"
    assert (
        api(
            "POST",
            "/approvals",
            "eve",
            json={"model": "churn", "version": "2", "stage": "Production"},
        ).status_code
        == 403
    )
    made = api(
        "POST",
        "/approvals",
        "alice",
        json={"model": "churn", "version": "2", "stage": "Production"},
    )
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["status"] == "pending" and all(g["passed"] for g in request["gates"])
    rid = request["id"]
    self_approval = api("POST", f"/approvals/{rid}/approve", "alice", json={})
    assert self_approval.status_code == 409 and "self-approval" in self_approval.json()["detail"]
    assert (
        api("POST", f"/approvals/{rid}/approve", "bob", json={"comment": "ok"}).status_code == 200
    )
    duplicate = api("POST", f"/approvals/{rid}/approve", "bob", json={})
    assert duplicate.status_code == 409 and "duplicate approval" in duplicate.json()["detail"]
    wrong_role = api("POST", f"/approvals/{rid}/approve", "eve", json={})
    assert wrong_role.status_code == 403
    done = api("POST", f"/approvals/{rid}/approve", "carol")
    assert done.status_code == 200 and done.json()["status"] == "promoted"
    assert api("GET", "/model/info", "eve").json()["version"] == "2"  # hot swap
    closed = api("POST", f"/approvals/{rid}/approve", "dave", json={})
    assert closed.status_code == 409 and "is closed" in closed.json()["detail"]
    listed = api("GET", "/approvals?status=promoted", "eve").json()
    assert [r["id"] for r in listed] == [rid]
    shown = api("GET", f"/approvals/{rid}", "eve").json()
    assert [a["actor"] for a in shown["actions"]] == ["bob", "carol"]
    assert api("GET", "/approvals?status=weird", "eve").status_code == 422


def test_reject_over_rest_and_rollback(api):
    made = api(
        "POST",
        "/approvals",
        "alice",
        json={"model": "churn", "version": "1", "stage": "Production"},
    )
    # churn/1 has no card in this module: its gates fail and the request is rejected (422)
    assert made.status_code == 422 and "model_card" in made.json()["detail"]
    back = api("POST", "/models/churn/rollback", "bob", json={"stage": "Production"})
    assert back.status_code == 200 and back.json()["version"] == "1"
    assert api("GET", "/model/info", "eve").json()["version"] == "1"


def test_audit_over_rest(api):
    assert api("GET", "/audit/verify", "bob").status_code == 403
    report = api("GET", "/audit/verify", "carol").json()
    assert report["ok"] and report["rows"] > 5
    lines = api("GET", "/audit/export?action=model.promote", "carol").text.splitlines()
    assert lines and all('"model.promote"' in line for line in lines)
    bad_since = api("GET", "/audit/export?since=yesterday", "carol")
    assert bad_since.status_code == 422
    assert "invalid query parameter 'since' 'yesterday'" in bad_since.json()["detail"]
    assert "--since" not in bad_since.json()["detail"]


def test_approvals_need_auth_when_it_is_off(governed):
    settings, _ = governed
    app = create_app("churn@production", settings.model_copy(update={"auth": "off"}))
    with ServerThread(app) as server:
        answer = httpx.post(f"{server.url}/approvals/1/approve", json={})
        assert answer.status_code == 401
        assert "authenticated identity" in answer.json()["detail"]
