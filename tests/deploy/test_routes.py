"""Deployments over REST (the app in-process) with auth on: roles, the caller recorded as
actor, and clear 4xx answers for every bad request."""

from __future__ import annotations

import pytest

from mloop.serving.app import create_app
from mloop.store import open_database
from tests.support import deploykit, govkit
from tests.support.apps import in_process


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mloop.security.identities import IdentityStore
    from mloop.security.keys import KeyStore

    settings = govkit.settings_at(tmp_path_factory.mktemp("deploy-rest"), auth="on")
    deploykit.register_versions(settings)
    database = open_database(settings)
    keys = {}
    for name, roles in {"lead": ["ml_lead", "viewer"], "val": ["viewer"]}.items():
        IdentityStore(database).add(name, roles, actor="test")
        keys[name] = {"X-API-Key": KeyStore(database).create(name, actor="test")[0]}
    # The model files are absent on purpose: these routes never load a model.
    app = create_app("churn@production", settings, log_predictions=False, retry_interval=60)
    with in_process(app, wait_for_model=False) as http:
        yield http, keys


SPEC = {
    "name": "churn-ab",
    "policy": "ab",
    "variants": [
        {"name": "control", "model": "churn@production", "weight": 90},
        {"name": "challenger", "model": "churn@candidate", "weight": 10},
    ],
}


def test_the_deployment_lifecycle_over_rest(server):
    http, keys = server
    lead = keys["lead"]
    made = http.post("/deployments", json=SPEC, headers=lead)
    assert made.status_code == 201, made.text
    assert made.json()["revision"] == 1 and made.json()["updated_by"] == "lead"
    listed = http.get("/deployments", headers=keys["val"]).json()
    assert [d["name"] for d in listed] == ["churn-ab"]
    status = http.get("/deployments/churn-ab", headers=keys["val"]).json()
    assert [(v["variant"], v["version"], v["share"]) for v in status["variants"]] == [
        ("control", "1", 90.0),
        ("challenger", "2", 10.0),
    ]
    moved = http.post(
        "/deployments/churn-ab/shift", json={"to": "challenger", "percent": 40}, headers=lead
    )
    assert moved.status_code == 200 and moved.json()["revision"] == 2
    promoted = http.post("/deployments/churn-ab/promote", headers=lead)
    assert promoted.json()["spec"]["policy"] == "single"
    back = http.post("/deployments/churn-ab/rollback", headers=lead)
    assert back.json()["spec"]["variants"][1]["weight"] == 40
    history = http.get("/deployments/churn-ab/history", headers=keys["val"]).json()
    assert [h["reason"] for h in history] == ["apply", "shift", "promote", "rollback"]
    report = http.get("/deployments/churn-ab/report", headers=keys["val"])
    assert report.json()["recommendation"]["verdict"] == "not yet significant"
    page = http.get("/deployments/churn-ab/report?format=html", headers=keys["val"])
    assert page.headers["content-type"].startswith("text/html") and "<svg" not in page.text
    stale = http.post("/deployments", json={**SPEC, "expected_revision": 1}, headers=lead)
    assert stale.status_code == 409 and "changed since revision 1" in stale.json()["detail"]
    gone = http.delete("/deployments/churn-ab", headers=lead)
    assert gone.json() == {"name": "churn-ab", "deleted": True, "revision": 5}


def test_roles_are_enforced(server):
    http, keys = server
    assert http.get("/deployments").status_code == 401
    refused = http.post("/deployments", json=SPEC, headers=keys["val"])
    assert refused.status_code == 403
    assert http.post("/deployments/x/rollback", headers=keys["val"]).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/deployments", {**SPEC, "policy": "rainbow"}, 422, "policy: Input should be"),
        (
            "post",
            "/deployments",
            {**SPEC, "variants": [{**SPEC["variants"][0], "model": "churn@nightly"}]},
            422,
            "variant weights sum to 90",
        ),
        (
            "post",
            "/deployments",
            {
                **SPEC,
                "name": "other",
                "variants": [SPEC["variants"][0], {**SPEC["variants"][1], "model": "churn/42"}],
            },
            404,
            "model 'churn/42' does not resolve",
        ),
        ("post", "/deployments", [1, 2], 422, "must be a JSON object"),
        ("post", "/deployments", {**SPEC, "expected_revision": "x"}, 422, "must be an integer"),
        ("get", "/deployments/nope", None, 404, "deployment 'nope' not found"),
        ("post", "/deployments/nope/promote", None, 404, "deployment 'nope' not found"),
        ("post", "/deployments/nope/shift", {"to": "a", "percent": 500}, 422, "percent"),
    ],
)
def test_bad_requests_get_clear_4xx(server, method, path, body, status, message):
    http, keys = server
    answer = http.request(method, path, json=body, headers=keys["lead"])
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert http.get("/deployments/other", headers=keys["lead"]).status_code == 404
