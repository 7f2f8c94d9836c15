"""Governance through the CLI (Typer's runner): users, keys, tokens, approvals, audit and the
model card; refusals agree with REST (exit 4 = 409), identities are required and checked."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.settings import reset_settings
from tests.support import govkit
from tests.support.env import home_env

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory):

    root = tmp_path_factory.mktemp("gov-cli")
    settings = govkit.settings_at(root / "home")
    with home_env(settings.home):
        yield from govkit.governed_home(settings, root / "churn.csv")


def run(*args: str, env: dict | None = None):
    reset_settings()
    result = runner.invoke(app, list(args), env=env)
    reset_settings()
    return result


def test_users_keys_and_tokens(home):
    added = run("users", "add", "frank", "--role", "predictor", "--role", "viewer")
    assert added.exit_code == 0, added.output
    again = run("users", "add", "frank", "--role", "viewer")
    assert again.exit_code == 4 and "already exists" in again.output
    bad = run("users", "add", "gina", "--role", "boss")
    assert bad.exit_code == 2 and "unknown role 'boss'" in bad.output
    listed = json.loads(run("users", "list", "--json").output)
    assert {"name": "frank", "roles": ["predictor", "viewer"]}.items() <= next(
        u for u in listed if u["name"] == "frank"
    ).items()
    made = json.loads(run("keys", "create", "frank", "--label", "ci", "--json").output)
    assert made["key"].startswith("mlk_") and made["label"] == "ci"
    keys = json.loads(run("keys", "list", "--user", "frank", "--json").output)
    assert [k["key_id"] for k in keys] == [made["key_id"]] and "key" not in keys[0]
    token = run("token", "issue", "frank", "--ttl", "60")
    assert token.exit_code == 0 and token.stdout.count(".") == 2
    # a non-admin identity may not manage identities
    denied = run("users", "disable", "frank", "--as", "bob")
    assert denied.exit_code == 8 and "needs the role 'security'" in denied.output
    assert run("keys", "revoke", made["key_id"], "--as", "root").exit_code == 0
    assert run("keys", "revoke", made["key_id"]).exit_code == 4
    assert run("keys", "revoke", "ffffffffffff").exit_code == 3
    assert run("users", "disable", "frank").exit_code == 0
    disabled = run("token", "issue", "frank")
    assert disabled.exit_code == 4 and "disabled" in disabled.output
    assert run("users", "disable", "nobody").exit_code == 3


def test_promotion_without_approval_exits_4_like_rest_409(home):
    refused = run("models", "promote", "churn", "2", "--stage", "Production")
    assert refused.exit_code == 4
    assert "requires an approved request" in refused.output
    assert "mloop approvals submit churn 2" in refused.output


def test_approval_flow_and_card(home, tmp_path):
    no_identity = run("approvals", "submit", "churn", "2", "--stage", "Production")
    assert no_identity.exit_code == 8 and "needs an identity" in no_identity.output
    failing = run("approvals", "submit", "churn", "2", "--stage", "Production", "--as", "alice")
    assert failing.exit_code == 5 and "model_card" in failing.output
    card = run(
        "models",
        "card",
        "churn/2",
        "--owner",
        "alice",
        "--intended-use",
        "retention",
        "--out",
        str(tmp_path / "card"),
    )
    assert card.exit_code == 0, card.output
    assert (tmp_path / "card" / "card.html").read_text().startswith("<!doctype html>")
    submitted = run(
        "approvals",
        "submit",
        "churn",
        "2",
        "--stage",
        "Production",
        "--json",
        env={"MLOOP_USER": "alice"},
    )
    assert submitted.exit_code == 0, submitted.output
    rid = str(json.loads(submitted.stdout)["id"])
    assert run("approvals", "approve", rid, "--as", "alice").exit_code == 4
    assert run("approvals", "approve", rid, "--as", "eve").exit_code == 8
    assert run("approvals", "approve", rid, "--as", "bob").exit_code == 0
    dup = run("approvals", "approve", rid, "--as", "bob")
    assert dup.exit_code == 4 and "duplicate approval" in dup.output
    done = run("approvals", "approve", rid, "--as", "carol", "--json")
    assert json.loads(done.stdout)["status"] == "promoted"
    closed = run("approvals", "approve", rid, "--as", "dave")
    assert closed.exit_code == 4 and "is closed" in closed.output
    shown = run("approvals", "show", rid)
    assert "bob approved as ml_lead" in shown.output and "promoted" in shown.output
    assert rid in run("approvals", "list", "--status", "promoted").output
    assert run("approvals", "show", "77").exit_code == 3
    assert (
        run("approvals", "submit", "churn", "2", "--stage", "Nope", "--as", "alice").exit_code == 3
    )
    assert (
        run("approvals", "submit", "ghost", "1", "--stage", "Production", "--as", "alice").exit_code
        == 3
    )
    assert run("approvals", "reject", rid, "--reason", "late", "--as", "carol").exit_code == 4


def test_audit_verify_export_and_tamper(home, tmp_path):
    settings, _ = home
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "intact" in ok.output
    out = tmp_path / "audit.jsonl"
    exported = run("audit", "export", "--since", "1d", "--out", str(out))
    assert exported.exit_code == 0
    actions = {json.loads(line)["action"] for line in out.read_text().splitlines()}
    assert {"identity.add", "key.create", "model.register", "approval.approve"} <= actions
    assert run("audit", "export", "--since", "soon").exit_code == 2
    from mloop.store import open_database

    with open_database(settings).engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5"))
    broken = run("audit", "verify", "--json")
    assert broken.exit_code == 10
    report = json.loads(broken.stdout)
    assert (report["ok"], report["seq"], report["kind"]) == (False, 5, "modified")
