"""Browser scenario (c): a row of the audit chain edited directly in the database shows as
broken on the verify page, with its row number."""

from __future__ import annotations

from sqlalchemy import update

from mloop.governance.audit import audit_log
from mloop.store import open_database
from mloop.store.governance import AuditRow
from tests.console.conftest import password


def test_a_tampered_audit_row_is_named_as_broken(console_page, live_console):
    ui, (_, data) = console_page, live_console
    ui.login("approver", password("approver"))
    ui.goto("/ui/audit")
    ui.page.click("text=Verify the chain")
    assert ui.page.locator("[data-verify=ok]").is_visible()
    victim = next(r for r in audit_log(data.settings).rows() if r["action"] == "approval.submit")
    with open_database(data.settings).session() as session:
        session.execute(
            update(AuditRow)
            .where(AuditRow.seq == victim["seq"])
            .values(detail='{"comment": "nothing to see"}')
        )
    ui.goto("/ui/audit")
    ui.page.click("text=Verify the chain")
    broken = ui.page.locator("[data-verify=broken]")
    assert broken.is_visible()
    assert f"at row {victim['seq']} (modified)" in broken.inner_text()
    ui.shot("broken")
    ui.page.click(f"text=Show row {victim['seq']}")
    assert ui.page.locator(f"#row-{victim['seq']}").is_visible()
    ui.shot("broken-row")
