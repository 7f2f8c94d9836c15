"""Console actions in-process on their own demo data: an approver approves (the service
promotes, the audit records the console user), verify says ok, a tampered row is named; a
server with auth off serves the console as `local`; `mloop users set-password`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import update
from typer.testing import CliRunner

from mloop.cli.main import app as cli
from mloop.errors import AuthenticationError
from mloop.governance.approvals import ApprovalService
from mloop.governance.audit import audit_log
from mloop.registry.service import Registry
from mloop.security.identities import IdentityStore
from mloop.security.passwords import PasswordStore, check_password, hash_password
from mloop.serving.app import create_app
from mloop.settings import reset_settings
from mloop.store import open_database
from mloop.store.governance import AuditRow
from tests.console.conftest import csrf_of, login, login_token_of, post_login
from tests.support.apps import in_process


def test_an_approver_approves_the_audit_shows_it_and_the_chain_verifies(console_http, console_data):
    number = console_data.approval_id
    csrf = login(console_http, "approver")
    page = console_http.get(f"/ui/approvals/{number}").text
    assert "You may not approve" not in page and 'data-confirm="Approve churn/2' in page
    done = console_http.post(
        f"/ui/approvals/{number}/approve", data={"csrf_token": csrf, "comment": "fine by me"}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/ui/approvals/{number}"
    shown = console_http.get(done.headers["location"]).text
    assert "approved request" in shown and "promoted" in shown and "fine by me" in shown
    assert ApprovalService(console_data.settings).get(number).status == "promoted"
    assert Registry(console_data.settings).get_version("churn@production").version == "2"
    rows = list(audit_log(console_data.settings).rows(action="approval.approve"))
    assert rows[-1]["actor"] == "approver" and rows[-1]["detail"]["comment"] == "fine by me"
    audit = console_http.get("/ui/audit?actor=approver").text
    assert "approval.approve" in audit
    verified = console_http.post("/ui/audit/verify", data={"csrf_token": csrf_of(audit)})
    assert verified.status_code == 200 and 'data-verify="ok"' in verified.text
    again = console_http.post(f"/ui/approvals/{number}/approve", data={"csrf_token": csrf})
    assert again.status_code == 409 and "closed" in again.text


def test_a_tampered_audit_row_shows_as_broken_with_its_number(console_http, console_data):
    log = audit_log(console_data.settings)
    target = next(row for row in log.rows() if row["action"] == "console.login")["seq"]
    with open_database(console_data.settings).session() as session:
        session.execute(
            update(AuditRow).where(AuditRow.seq == target).values(detail='{"method":"forged"}')
        )
    csrf = login(console_http, "approver")
    answer = console_http.post("/ui/audit/verify", data={"csrf_token": csrf})
    assert answer.status_code == 200 and 'data-verify="broken"' in answer.text
    assert re.search(rf"BROKEN</strong> at row {target} \(modified\)", answer.text)


def test_with_auth_off_the_console_serves_the_local_identity(console_data):
    settings = console_data.settings.model_copy(update={"auth": "off"})
    with in_process(create_app("churn@production", settings)) as http:
        page = http.get("/ui/models")
        assert page.status_code == 200 and ">local<" in page.text
        approvals = http.get("/ui/approvals").text
        assert "Approvals" in approvals
        local_csrf = csrf_of(http.get("/ui/audit").text)
        verify = http.post("/ui/audit/verify", data={"csrf_token": local_csrf})
        assert verify.status_code == 200  # auth off: every action allowed, as the API
        approve = http.post("/ui/approvals/1/approve", data={"csrf_token": local_csrf})
        assert approve.status_code == 403 and "logged-in identity" in approve.text
        viewer_csrf = login(http, "viewer")  # login still works, with the viewer's roles
        refused = http.post("/ui/audit/verify", data={"csrf_token": viewer_csrf})
        assert refused.status_code == 403


def test_passwords_are_salted_scrypt_hashes(mloop_home):
    one, two = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert one != two and one.startswith("scrypt$") and "s3cret" not in one
    assert check_password("s3cret-pass", one) and not check_password("other-pass", one)
    assert not check_password("s3cret-pass", "garbage")


def test_users_set_password_from_stdin_needs_the_security_role(mloop_home):
    database = open_database(mloop_home)
    IdentityStore(database).add("carol", ["viewer"], actor="test")
    IdentityStore(database).add("sec", ["security"], actor="test")
    runner = CliRunner()
    reset_settings()
    refused = runner.invoke(
        cli,
        ["users", "set-password", "carol", "--password-stdin", "--as", "carol"],
        input="long-enough\n",
    )
    assert refused.exit_code == 8, refused.output
    short = runner.invoke(
        cli, ["users", "set-password", "carol", "--password-stdin"], input="short\n"
    )
    assert short.exit_code != 0 and "at least 8" in short.output
    done = runner.invoke(
        cli,
        ["users", "set-password", "carol", "--password-stdin", "--as", "sec"],
        input="long-enough\n",
    )
    assert done.exit_code == 0, done.output
    assert PasswordStore(database).authenticate("carol", "long-enough").name == "carol"
    try:
        PasswordStore(database).authenticate("carol", "wrong-one!")
        raise AssertionError("a wrong password was accepted")
    except AuthenticationError:
        pass
    rows = list(audit_log(mloop_home).rows(action="identity.password"))
    assert rows[-1]["actor"] == "sec" and rows[-1]["target"] == "carol"
    reset_settings()


def test_login_attempts_are_rate_limited_by_the_servers_limiter(console_data):
    settings = console_data.settings.model_copy(update={"rate_limit": 0.01, "rate_limit_burst": 2})
    with in_process(create_app("churn@production", settings)) as http:
        statuses = [
            post_login(http, {"username": "viewer", "password": "nope-nope"}) for _ in range(3)
        ]
        assert [a.status_code for a in statuses] == [401, 401, 429]
        assert statuses[-1].headers["content-type"].startswith("text/html")
        assert "retry-after" in statuses[-1].headers


def test_the_session_cookie_is_secure_when_the_server_runs_tls(console_data, tmp_path):
    settings = console_data.settings.model_copy(update={"ssl_certfile": tmp_path / "cert.pem"})
    with in_process(create_app("churn@production", settings)) as http:
        form = http.get("/ui/login")
        nonce = form.cookies["mloop_login"]  # Secure too: the client keeps it off plain http
        assert "secure" in form.headers["set-cookie"].lower()
        fields = {"username": "viewer", "password": "viewer-password"}
        answer = http.post(
            "/ui/login",
            data={"login_token": login_token_of(form.text), **fields},
            headers={"cookie": f"mloop_login={nonce}"},
        )
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()


def test_the_approvals_page_shows_pending_first_a_page_at_a_time(console_http, console_data):
    from mloop.serving.console.pages.approvals import PAGE
    from mloop.store.governance import ApprovalRequestRow

    extra = PAGE + 5
    with open_database(console_data.settings).session() as session:
        for n in range(extra):
            for status in ("pending", "rejected"):
                session.add(
                    ApprovalRequestRow(
                        model_name="churn",
                        version="1",
                        stage="Staging",
                        requester="alice",
                        status=status,
                        required_roles=["compliance"],
                        gates=[],
                        comment=f"bulk {n}",
                        closed_at=None if status == "pending" else datetime.now(UTC),
                    )
                )
    service = ApprovalService(console_data.settings)
    pending = [r.id for r in service.list(status="pending")]
    closed = [r.id for r in service.list() if r.status != "pending"][::-1]  # newest first
    assert len(pending) > PAGE and len(closed) > PAGE
    login(console_http, "viewer")
    first = console_http.get("/ui/approvals").text
    assert first.index('id="pending"') < first.index('id="closed"')  # pending first
    assert _listed(first, "pending") == pending[:PAGE]  # oldest first
    assert _listed(first, "closed") == closed[:PAGE]
    more = re.search(r'href="([^"]+)">More pending', first).group(1).replace("&amp;", "&")
    second = console_http.get(more).text
    assert _listed(second, "pending") == pending[PAGE : 2 * PAGE]
    assert _listed(second, "closed") == closed[:PAGE]  # the other list stays where it was
    older = re.search(r'href="([^"]+)">Older', first).group(1).replace("&amp;", "&")
    assert _listed(console_http.get(older).text, "closed") == closed[PAGE : 2 * PAGE]
    for bad in ("pending=-1", "closed=x"):
        answer = console_http.get(f"/ui/approvals?{bad}")
        assert answer.status_code == 422 and "text/html" in answer.headers["content-type"]


def _listed(page: str, section: str) -> list[int]:
    """The request ids in one section (pending or closed) of the approvals page, in order."""
    start = page.index(f'id="{section}"')
    end = page.find("</section>", start)
    return [int(n) for n in re.findall(r'data-request="(\d+)"', page[start:end])]
