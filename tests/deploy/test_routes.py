"""Deployments over REST on a real uvicorn server with auth on: roles, the caller recorded
as actor, and clear 4xx answers for every bad request."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import deploykit  # noqa: E402

from mloop.serving.app import create_app  # noqa: E402
from mloop.serving.server import ServerThread  # noqa: E402
from mloop.settings import Settings  # noqa: E402
from mloop.store import open_database  # noqa: E402


def settings_at(home: Path, **extra) -> Settings:
    settings = Settings(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        artifact_root=str(home / "artifacts"),
        database_url=f"sqlite:///{home / 'mloop.db'}",
        fallback_model_uris=[],
        **extra,
    )
    settings.ensure_home()
    return settings


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mloop.security.identities import IdentityStore
    from mloop.security.keys import KeyStore

    settings = settings_at(tmp_path_factory.mktemp("deploy-rest"), auth="on")
    deploykit.register_versions(settings)
    database = open_database(settings)
    keys = {}
    for name, roles in {"lead": ["ml_lead", "viewer"], "val": ["viewer"]}.items():
        IdentityStore(database).add(name, roles, actor="test")
        keys[name] = {"X-API-Key": KeyStore(database).create(name, actor="test")[0]}
    # The model files are absent on purpose: these routes never load a model.
    app = create_app("churn@production", settings, log_predictions=False, retry_interval=60)
    with ServerThread(app, wait_for_model=False) as running:
        yield running.url, keys


SPEC = {
    "name": "churn-ab",
    "policy": "ab",
    "variants": [
        {"name": "control", "model": "churn@production", "weight": 90},
        {"name": "challenger", "model": "churn@candidate", "weight": 10},
    ],
}


def test_the_deployment_lifecycle_over_rest(server):
    url, keys = server
    lead = keys["lead"]
    made = httpx.post(f"{url}/deployments", json=SPEC, headers=lead)
    assert made.status_code == 201, made.text
    assert made.json()["revision"] == 1 and made.json()["updated_by"] == "lead"
    listed = httpx.get(f"{url}/deployments", headers=keys["val"]).json()
    assert [d["name"] for d in listed] == ["churn-ab"]
    status = httpx.get(f"{url}/deployments/churn-ab", headers=keys["val"]).json()
    assert [(v["variant"], v["version"], v["share"]) for v in status["variants"]] == [
        ("control", "1", 90.0),
        ("challenger", "2", 10.0),
    ]
    moved = httpx.post(
        f"{url}/deployments/churn-ab/shift", json={"to": "challenger", "percent": 40}, headers=lead
    )
    assert moved.status_code == 200 and moved.json()["revision"] == 2
    promoted = httpx.post(f"{url}/deployments/churn-ab/promote", headers=lead)
    assert promoted.json()["spec"]["policy"] == "single"
    back = httpx.post(f"{url}/deployments/churn-ab/rollback", headers=lead)
    assert back.json()["spec"]["variants"][1]["weight"] == 40
    history = httpx.get(f"{url}/deployments/churn-ab/history", headers=keys["val"]).json()
    assert [h["reason"] for h in history] == ["apply", "shift", "promote", "rollback"]
    report = httpx.get(f"{url}/deployments/churn-ab/report", headers=keys["val"])
    assert report.json()["recommendation"]["verdict"] == "not yet significant"
    page = httpx.get(f"{url}/deployments/churn-ab/report?format=html", headers=keys["val"])
    assert page.headers["content-type"].startswith("text/html") and "<svg" not in page.text
    stale = httpx.post(f"{url}/deployments", json={**SPEC, "expected_revision": 1}, headers=lead)
    assert stale.status_code == 409 and "changed since revision 1" in stale.json()["detail"]
    gone = httpx.delete(f"{url}/deployments/churn-ab", headers=lead)
    assert gone.json() == {"name": "churn-ab", "deleted": True, "revision": 5}


def test_roles_are_enforced(server):
    url, keys = server
    assert httpx.get(f"{url}/deployments").status_code == 401
    refused = httpx.post(f"{url}/deployments", json=SPEC, headers=keys["val"])
    assert refused.status_code == 403
    assert httpx.post(f"{url}/deployments/x/rollback", headers=keys["val"]).status_code == 403


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
    url, keys = server
    answer = httpx.request(method, f"{url}{path}", json=body, headers=keys["lead"])
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert httpx.get(f"{url}/deployments/other", headers=keys["lead"]).status_code == 404
