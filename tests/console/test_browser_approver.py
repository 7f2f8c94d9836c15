"""Browser scenario (b): an approver approves the pending request with a comment; the audit
page then shows the approval and the chain verifies."""

from __future__ import annotations

import re

from tests.console.conftest import password


def test_an_approver_approves_and_the_audit_chain_verifies(console_page, live_console):
    ui, (_, data) = console_page, live_console
    ui.login("approver", password("approver"))
    ui.page.click("nav >> text=Approvals")
    ui.page.wait_for_url("**/ui/approvals")
    ui.page.click(f"td a >> text=#{data.approval_id}")
    ui.page.wait_for_url(f"**/ui/approvals/{data.approval_id}")
    assert ui.page.locator("[data-why-not]").count() == 0
    ui.shot("approval")
    ui.page.fill("textarea[name=comment]", "checked the gates")
    ui.page.click("form[action$='/approve'] button")  # confirmed by the dialog handler
    ui.page.wait_for_selector(".flash-ok")
    assert "promoted" in ui.page.inner_text(".flash-ok")
    assert ui.page.locator("td", has_text="checked the gates").is_visible()
    ui.shot("approved")
    ui.page.click("nav >> text=Audit")
    ui.page.wait_for_url("**/ui/audit")
    row = ui.page.locator("tr", has_text="approval.approve").first
    assert "approver" in row.inner_text()
    ui.shot("audit")
    ui.page.click("text=Verify the chain")
    ok = ui.page.locator("[data-verify=ok]")
    assert ok.is_visible() and re.search(r"intact", ok.inner_text())
    ui.shot("verified")
