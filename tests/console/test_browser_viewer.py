"""Browser scenario (a): a viewer logs in, sees the demo model and its version page (at laptop
and phone width, light and dark), and every action it tries is refused by the server."""

from __future__ import annotations

from tests.console.browser import PHONE
from tests.console.conftest import password


def test_a_viewer_sees_the_demo_model_and_is_refused_every_action(console_page, live_console):
    ui, (_, data) = console_page, live_console
    ui.goto("/")
    assert "/ui/login" in ui.page.url
    ui.shot("login")
    ui.login("viewer", password("viewer"))
    assert ui.page.locator("td a", has_text="churn").first.is_visible()
    ui.shot("models")
    ui.shot("models-phone", width=PHONE)
    ui.page.click("td a >> text=churn")
    ui.page.wait_for_url("**/ui/models/churn")
    ui.page.click("td a >> text=v2")
    ui.page.wait_for_url("**/ui/models/churn/versions/2")
    assert ui.page.locator("h2", has_text="Signature inputs").is_visible()
    assert ui.page.locator("td", has_text="tenure_months").first.is_visible()
    ui.shot("version")
    ui.page.click("[data-theme-toggle]")
    theme = ui.page.evaluate("document.documentElement.getAttribute('data-theme')")
    assert theme in ("dark", "light")
    ui.shot(f"version-{theme}")
    ui.page.click("[data-theme-toggle]")
    ui.goto("/ui/models/churn/compare?a=1&b=2")
    ui.page.wait_for_selector("[data-chart] .main-svg")  # Plotly drew the chart
    ui.shot("compare")

    ui.goto(f"/ui/approvals/{data.approval_id}")
    assert ui.page.locator("[data-why-not]").is_visible()
    ui.shot("approval-refused")
    # The approve button is disabled for a viewer; the server refuses the form even so.
    ui.page.eval_on_selector(
        "form[action$='/approve'] button", "button => button.removeAttribute('disabled')"
    )
    ui.expect_status("/approve", 403)
    with ui.page.expect_response(lambda r: r.url.endswith("/approve")) as answer:
        ui.page.click("form[action$='/approve'] button")
    assert answer.value.status == 403
    assert ui.page.locator("h1", has_text="403").is_visible()
    ui.shot("approve-403")
    ui.goto("/ui/audit")
    ui.expect_status("/ui/audit/verify", 403)
    with ui.page.expect_response(lambda r: r.url.endswith("/ui/audit/verify")) as answer:
        ui.page.click("text=Verify the chain")
    assert answer.value.status == 403 and ui.page.locator("text=compliance").first.is_visible()
    ui.shot("verify-403")
    ui.expect_status("/ui/audit/export.csv", 403)
    refused = ui.goto("/ui/audit/export.csv")
    assert refused.status == 403
