"""Browser scenario (c): a deployer logs in, rolls the demo deployment back in the console, and
the server then answers predictions through it with the previous version."""

from __future__ import annotations

import httpx

from tests.console.browser import PHONE
from tests.console.conftest import password
from tests.support.loopkit import churn_rows
from tests.support.waiting import wait_for


def _version(base: str, key: str) -> str | None:
    """The version answering `/deployments/churn/predict` (None while it still loads: 503)."""
    answer = httpx.post(
        f"{base}/deployments/churn/predict",
        json={"features": churn_rows(1)[0]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert answer.status_code in (200, 503), answer.text
    return answer.json()["model_version"] if answer.status_code == 200 else None


def test_a_deployer_rolls_back_and_the_server_answers_with_the_previous_version(
    console_page, live_console
):
    ui, (base, data) = console_page, live_console
    root = {"Authorization": f"Bearer {data.keys['root']}"}
    spec = {
        "name": "churn",
        "default": True,
        "policy": "single",
        "variants": [{"name": "main", "model": "churn/2"}],
    }
    applied = httpx.post(f"{base}/deployments", json=spec, headers=root, timeout=60)
    assert applied.status_code == 201, applied.text
    key = data.keys["root"]
    wait_for(lambda: _version(base, key) == "2", "churn/2 answering through the deployment")

    ui.login("deployer", password("deployer"))
    ui.goto("/ui/deployments")
    ui.shot("deployments")
    ui.shot("deployments-phone", width=PHONE)
    ui.page.click("td a >> text=churn")
    ui.page.wait_for_url("**/ui/deployments/churn")
    ui.page.wait_for_selector("[data-chart] .main-svg")  # the latency chart was drawn
    ui.shot("deployment")
    with ui.page.expect_response(lambda r: r.url.endswith("/rollback")) as answer:
        ui.page.click("form[action$='/rollback'] button")  # confirmed by the harness
    assert answer.value.status == 303
    ui.page.wait_for_url("**/ui/deployments/churn")
    assert ui.page.locator(".flash-ok", has_text="rolled back churn").is_visible()
    ui.shot("rolled-back")

    assert wait_for(lambda: _version(base, key), "the rolled-back deployment answering") == "1"
    history = httpx.get(f"{base}/deployments/churn/history", headers=root, timeout=30).json()
    assert (history[-1]["reason"], history[-1]["actor"]) == ("rollback", "deployer")
    ui.goto("/ui/monitoring")
    ui.shot("monitoring")
    # jobs need the predictor role (as GET /jobs): no Jobs entry, and the page is refused
    assert ui.page.locator("nav >> text=Jobs").count() == 0
    ui.expect_status("/ui/jobs", 403)
    refused = ui.goto("/ui/jobs")
    assert refused.status == 403 and ui.page.locator("text=predictor").first.is_visible()
    ui.shot("jobs-403")
