"""The console's Deployments, Monitoring and Jobs pages in-process, with auth on: every page
answers 200 with data, user strings are escaped, a viewer is refused every action (403) even
posting by hand, CSRF is enforced, unknown things are 404 pages and bad input a 4xx page."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mloop.jobs.queue import JobQueue
from mloop.store.jobs import JobRecord
from tests.console.conftest import ConsoleData, csrf_of, login
from tests.support.apps import in_process
from tests.support.loopkit import churn_rows

AB = {
    "name": "churn-ab",
    "policy": "ab",
    "variants": [
        {"name": "control", "model": "churn@production", "weight": 80},
        {"name": "challenger", "model": "churn/2", "weight": 20},
    ],
}
BLUE_GREEN = {
    "name": "churn-bg",
    "policy": "blue_green",
    "variants": [
        {"name": "blue", "model": "churn@production"},
        {"name": "green", "model": "churn/2"},
    ],
}
HTML = "<script>alert(3)</script>"


@dataclass
class Ops:
    http: httpx.Client
    data: ConsoleData
    prediction_ids: list[str]
    job_id: str


def _api(data: ConsoleData, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {data.keys[name]}"}


@pytest.fixture(scope="module")
def ops(console_data: ConsoleData, console_http: httpx.Client) -> Iterator[Ops]:
    """Two more deployments with traffic, logged predictions with labels, a queued job."""
    http, root = console_http, _api(console_data, "root")
    for spec in (AB, BLUE_GREEN):
        answer = http.post("/deployments", json=spec, headers=root)
        assert answer.status_code == 201, answer.text
    rows = churn_rows(40)
    answer = http.post("/predict/batch", json={"instances": rows}, headers=root, timeout=60)
    assert answer.status_code == 200, answer.text
    ids = [p["prediction_id"] for p in answer.json()["predictions"]]
    labels = [{"prediction_id": i, "actual": n % 2} for n, i in enumerate(ids)]
    assert http.post("/feedback", json={"feedback": labels}, headers=root).status_code == 200
    for n, row in enumerate(rows[:10]):
        body = {"features": row, "user_id": f"u{n}"}
        http.post("/deployments/churn-ab/predict", json=body, headers=root, timeout=60)
    queue = JobQueue.from_settings(console_data.settings)
    job = queue.submit("predict", payload={"instances": rows[:2]}, rows=2, model_uri=HTML)
    with queue.database.session() as session:  # not due for an hour: no worker takes it
        session.get(JobRecord, job.id).run_after = datetime.now(UTC) + timedelta(hours=1)
    yield Ops(http, console_data, ids, job.id)


def test_every_page_answers_with_its_data(ops):
    login(ops.http, "viewer")
    pages = {
        "/ui/deployments": ["churn-ab", "challenger", "blue_green", "20%"],
        "/ui/deployments/churn-ab": ["A/B report", "Recommendation", "p99 ms", "History"],
        "/ui/deployments/churn-bg": ["blue", "green", "Switch to green"],
        "/ui/monitoring": ["Drift per feature", "Quality from ground truth", "drift-chart"],
        "/ui/monitoring/features/tenure_months": ["Reference vs current", "histogram-chart"],
        f"/ui/monitoring/predictions?id={ops.prediction_ids[0]}": ["Ground truth", "tenure_months"],
        "/ui/monitoring/predictions": ["Prediction id"],
    }
    _shows(ops.http, pages)
    login(ops.http, "pred", key=ops.data.keys["pred"])  # jobs need predictor, as GET /jobs
    _shows(
        ops.http,
        {"/ui/jobs": ["predict", "queued"], f"/ui/jobs/{ops.job_id}": ["Cancel job", "queued"]},
    )
    login(ops.http, "viewer")
    # the live numbers come from the server's metrics: the control answered requests
    detail = ops.http.get("/ui/deployments/churn-ab").text
    control = re.search(r"<strong>control</strong>.*?</tr>", detail, re.S).group(0)
    total = re.search(r"<td>(\d+) <span class=\"muted\">requests</span>", control)
    assert total and int(total.group(1)) > 0, control


def test_the_deployment_page_shows_the_numbers_of_the_last_minutes(ops):
    """Readings at two moments of an injected clock: the page shows the increase between."""
    from mloop.serving.app import create_app
    from mloop.serving.console.pages.deployments import live_window

    app = create_app("churn@production", ops.data.settings)
    clock = [5000.0]
    live_window(app).clock = lambda: clock[0]
    with in_process(app) as http:
        login(http, "viewer")
        before = http.get("/ui/deployments/churn").text
        assert "Live numbers (<strong>since start</strong>)" in before
        for row in churn_rows(6):
            answer = http.post(
                "/deployments/churn/predict", json={"features": row}, headers=_api(ops.data, "root")
            )
            assert answer.status_code == 200, answer.text
        clock[0] += 120
        page = http.get("/ui/deployments/churn").text
    assert "Live numbers (<strong>last 2 min</strong>)" in page
    main = re.search(r"<tr>\s*<td><strong>main</strong>.*?</tr>", page, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", main, re.S)
    requests, per_second, p50, p99, error_rate, window = cells[5:11]
    assert (requests, per_second, error_rate, window) == ("6", "0.05", "0.00%", "last 2 min")
    assert float(p50) > 0 and float(p99) >= float(p50)


def _shows(http: httpx.Client, pages: dict[str, list[str]]) -> None:
    """Each page answers 200 with the CSP and every text expected of it."""
    for url, expected in pages.items():
        page = http.get(url)
        assert page.status_code == 200, (url, page.text[:2000])
        for text in expected:
            assert text in page.text, (url, text)
        assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_user_strings_are_escaped(ops):
    login(ops.http, "pred", key=ops.data.keys["pred"])
    job = ops.http.get(f"/ui/jobs/{ops.job_id}").text
    assert HTML not in job and "&lt;script&gt;alert(3)&lt;/script&gt;" in job
    missing = ops.http.get("/ui/deployments/%3Cscript%3Ealert(3)%3C%2Fscript%3E")
    assert missing.status_code == 404
    assert HTML not in missing.text and "&lt;script&gt;" in missing.text
    feature = ops.http.get("/ui/monitoring/features/%3Cb%3Ex%3C%2Fb%3E")
    assert feature.status_code == 404 and "<b>x</b>" not in feature.text


ACTIONS = [
    ("/ui/deployments/churn-ab/promote", {}),
    ("/ui/deployments/churn-ab/rollback", {}),
    ("/ui/deployments/churn-ab/shift", {"to": "challenger", "share": "50"}),
    ("/ui/deployments/churn-bg/switch", {}),
]


def test_a_viewer_is_refused_every_action_even_posting_by_hand(ops):
    csrf = login(ops.http, "viewer")
    page = ops.http.get("/ui/deployments/churn-ab").text
    assert "does not hold the role <strong>ml_lead</strong>" in page
    for url, fields in [*ACTIONS, (f"/ui/jobs/{ops.job_id}/cancel", {})]:
        answer = ops.http.post(url, data={"csrf_token": csrf, **fields})
        assert answer.status_code == 403, (url, answer.text[:500])
        assert "needs the role" in answer.text
    revision = ops.http.get("/deployments/churn-ab", headers=_api(ops.data, "root")).json()
    assert revision["revision"] == 1  # nothing changed


def test_csrf_is_enforced(ops):
    login(ops.http, "deployer")
    for token in ("", "wrong"):
        answer = ops.http.post("/ui/deployments/churn-ab/rollback", data={"csrf_token": token})
        assert answer.status_code == 403 and "CSRF" in answer.text


def test_unknown_things_are_404_pages_and_bad_input_4xx(ops):
    csrf = login(ops.http, "deployer")
    for url in (
        "/ui/deployments/nope",
        "/ui/monitoring/features/nope",
        f"/ui/monitoring/predictions?id={uuid.uuid4()}",
    ):
        answer = ops.http.get(url)
        assert answer.status_code == 404, url
        assert "Not found" in answer.text
    bad_id = ops.http.get("/ui/monitoring/predictions?id=not-an-id")
    assert bad_id.status_code == 400 and "is not a prediction id" in bad_id.text
    for share in ("abc", "150", ""):
        answer = ops.http.post(
            "/ui/deployments/churn-ab/shift",
            data={"csrf_token": csrf, "to": "challenger", "share": share},
        )
        assert answer.status_code == 422, (share, answer.text[:500])
        assert "share" in answer.text
    unknown_variant = ops.http.post(
        "/ui/deployments/churn-ab/shift", data={"csrf_token": csrf, "to": "nope", "share": "5"}
    )
    assert 400 <= unknown_variant.status_code < 500
    not_blue_green = ops.http.post("/ui/deployments/churn-ab/switch", data={"csrf_token": csrf})
    assert not_blue_green.status_code == 409
    login(ops.http, "pred", key=ops.data.keys["pred"])  # the role the jobs pages need
    unknown_job = ops.http.get("/ui/jobs/nope")
    assert unknown_job.status_code == 404 and "Not found" in unknown_job.text


def test_a_deployer_acts_and_the_audit_names_them(ops):
    csrf = login(ops.http, "deployer")
    root = _api(ops.data, "root")
    steps = [
        ("/ui/deployments/churn-ab/shift", {"to": "challenger", "share": "40"}, "40%"),
        ("/ui/deployments/churn-ab/rollback", {}, "rolled back"),
        ("/ui/deployments/churn-bg/switch", {}, "switched to green"),
        ("/ui/deployments/churn-ab/promote", {"variant": "challenger"}, "promoted"),
    ]
    for url, fields, flash in steps:
        answer = ops.http.post(url, data={"csrf_token": csrf, **fields})
        assert answer.status_code == 303, (url, answer.text[:500])
        shown = ops.http.get(answer.headers["location"])
        assert shown.status_code == 200 and flash in shown.text
    ab = ops.http.get("/deployments/churn-ab", headers=root).json()
    assert ab["policy"] == "single" and ab["variants"][0]["variant"] == "challenger"
    bg = ops.http.get("/deployments/churn-bg", headers=root).json()
    assert {v["variant"]: v["role"] for v in bg["variants"]}["green"] == "active"
    history = ops.http.get("/deployments/churn-ab/history", headers=root).json()
    assert [(h["reason"], h["actor"]) for h in history[1:]] == [
        ("shift", "deployer"),
        ("rollback", "deployer"),
        ("promote", "deployer"),
    ]
    login(ops.http, "pred", key=ops.data.keys["pred"])
    page = ops.http.get(f"/ui/jobs/{ops.job_id}").text
    answer = ops.http.post(f"/ui/jobs/{ops.job_id}/cancel", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert "cancelled" in ops.http.get(answer.headers["location"]).text


def test_the_jobs_pages_need_the_role_the_jobs_api_needs(ops):
    """A viewer gets the API's own refusal as a page and no Jobs entry in the nav; a
    predictor sees both; the console's cancel needs the role DELETE /jobs/{id} declares."""
    from mloop.security import permissions as p
    from mloop.security.access import api_routes

    declared = {
        (path, m): role for path, methods, role in api_routes(ops.http.app) for m in methods
    }
    for action, path, method in (
        (p.JOB_READ, "/jobs", "GET"),
        (p.JOB_SHOW, "/jobs/{job_id}", "GET"),
        (p.JOB_CANCEL, "/jobs/{job_id}", "DELETE"),
    ):
        assert declared[(path, method)] == action.role, (method, path)
    login(ops.http, "eve", key=ops.data.keys["eve"])  # a viewer with an API key
    assert 'href="/ui/jobs"' not in ops.http.get("/ui/models").text
    for page, api in (("/ui/jobs", "/jobs"), (f"/ui/jobs/{ops.job_id}", f"/jobs/{ops.job_id}")):
        refused = ops.http.get(api, headers=_api(ops.data, "eve"))
        shown = ops.http.get(page)
        assert refused.status_code == shown.status_code == 403, page
        assert refused.json()["detail"] in html.unescape(shown.text), page
        assert "predictor" in shown.text and shown.headers["content-type"].startswith("text/html")
    login(ops.http, "pred", key=ops.data.keys["pred"])
    assert 'href="/ui/jobs"' in ops.http.get("/ui/models").text
    assert ops.http.get(f"/jobs/{ops.job_id}", headers=_api(ops.data, "pred")).status_code == 200
    assert ops.http.get(f"/ui/jobs/{ops.job_id}").status_code == 200
