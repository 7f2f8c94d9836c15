"""The CLI checks the roles the REST routes enforce (issue 20, defects 4 and 5).

Typer's runner on a real store: a viewer, a data scientist or a compliance key cannot change a
deployment from the command line either, a bad MLOOP_API_KEY is refused even for reads, and
`mloop models alias` (ml_lead, audited) creates the alias the shipped examples need.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.errors import NotFoundError, PermissionDeniedError
from mloop.governance.audit import audit_log
from mloop.security import permissions
from mloop.security.access import api_routes
from mloop.serving.app import create_app
from mloop.settings import reset_settings
from tests.support import deploykit, govkit

EXAMPLES = Path(__file__).parents[2] / "examples" / "deployments"
runner = CliRunner()


@pytest.fixture
def home(mloop_home):
    deploykit.register_versions(mloop_home)
    return mloop_home, govkit.add_people(mloop_home)


def run(*args: str, env: dict | None = None):
    reset_settings()
    result = runner.invoke(app, list(args), env=env)
    reset_settings()
    return result


def said(result) -> str:
    return " ".join(result.output.split())


def history() -> list[str]:
    return [h["reason"] for h in json.loads(run("deploy", "history", "churn-ab", "--json").output)]


def test_roles_the_rest_routes_need_are_needed_from_the_cli(home):
    _, keys = home
    assert run("deploy", "apply", str(EXAMPLES / "ab.yaml"), "--as", "bob").exit_code == 0
    viewer = run("deploy", "rollback", "churn-ab", "--as", "eve")
    assert viewer.exit_code == PermissionDeniedError.exit_code, viewer.output
    assert "identity 'eve' (roles: viewer) may not POST /deployments/{name}/rollback" in said(
        viewer
    )
    assert "it needs the role 'ml_lead'" in said(viewer)
    scientist = run("deploy", "shift", "churn-ab", "--to", "challenger", "--percent", "50",
                    "--as", "alice")  # fmt: skip
    assert scientist.exit_code == 8 and "needs the role 'ml_lead'" in said(scientist)
    compliance = run("deploy", "shift", "churn-ab", "--to", "challenger", "--percent", "50",
                     env={"MLOOP_API_KEY": keys["carol"]})  # fmt: skip
    assert compliance.exit_code == 8 and "identity 'carol'" in said(compliance)
    for refused in (
        ("deploy", "promote", "churn-ab", "--as", "eve"),
        ("deploy", "delete", "churn-ab", "--yes", "--as", "alice"),
        ("deploy", "apply", str(EXAMPLES / "ab.yaml"), "--as", "pred"),
        ("models", "promote", "churn", "2", "--stage", "Staging", "--as", "eve"),
        ("models", "rollback", "churn", "--as", "alice"),
        ("models", "alias", "churn", "1", "candidate", "--as", "carol"),
        ("approvals", "submit", "churn", "2", "--stage", "Staging", "--as", "eve"),
        ("audit", "export", "--as", "bob"),
        ("audit", "verify", "--as", "alice"),
        ("users", "add", "zed", "--role", "viewer", "--as", "bob"),
    ):
        result = run(*refused)
        assert result.exit_code == 8, (refused, result.output)
        assert "may not" in said(result) and "it needs the role" in said(result), refused
    assert history() == ["apply"]  # nothing changed
    shifted = run("deploy", "shift", "churn-ab", "--to", "challenger", "--percent", "50",
                  env={"MLOOP_API_KEY": keys["bob"]})  # fmt: skip
    assert shifted.exit_code == 0, shifted.output
    revisions = json.loads(run("deploy", "history", "churn-ab", "--json").output)
    assert [r["actor"] for r in revisions] == ["bob", "bob"]
    assert run("audit", "verify", "--as", "carol").exit_code == 0


def test_a_bad_credential_is_refused_even_for_reads(home):
    for env in ({"MLOOP_API_KEY": "garbage"}, {"MLOOP_API_KEY": "mlk_0000_nope"},
                {"MLOOP_TOKEN": "not.a.token"}):  # fmt: skip
        for command in (("deploy", "list"), ("models", "list"), ("approvals", "list")):
            result = run(*command, env=env)
            assert result.exit_code == 8, (env, command, result.output)
            assert "refused" in said(result) and "hint:" in result.output, result.output
    assert "MLOOP_API_KEY refused: malformed API key" in said(
        run("deploy", "list", env={"MLOOP_API_KEY": "garbage"})
    )
    unknown = run("deploy", "list", "--json", env={"MLOOP_USER": "nobody"})
    assert unknown.exit_code == NotFoundError.exit_code and "identity 'nobody' not found" in said(
        unknown
    )
    assert run("deploy", "list", "--json").exit_code == 0  # no identity: the local operator


def test_every_action_declares_the_role_of_its_rest_route(mloop_home):
    rest = {}
    for path, methods, role in api_routes(create_app("churn@production", mloop_home)):
        for method in methods:
            rest[f"{method} {path}"] = role
    routed = [a for a in permissions.ACTIONS if a.route is not None]
    assert len(routed) >= 15
    for action in routed:
        assert action.route in rest, f"{action.name}: no route {action.route}"
        assert rest[action.route] is action.role, (action.route, rest[action.route], action.role)


def test_models_alias_creates_the_alias_the_examples_need(mloop_home):
    """The README's steps give churn@production only; ab.yaml also needs churn@candidate."""
    deploykit.register_versions(mloop_home)
    client = mlflow.MlflowClient()
    client.delete_registered_model_alias("churn", "candidate")
    govkit.add_people(mloop_home)
    missing = run("deploy", "apply", str(EXAMPLES / "ab.yaml"))
    assert missing.exit_code == 3, missing.output
    assert "alias 'candidate' of model 'churn' not found" in said(missing)
    assert "hint: point it at a version: mloop models alias churn VERSION candidate" in said(
        missing
    )
    stage = run("models", "alias", "churn", "2", "production")
    assert stage.exit_code == 2 and "mloop models promote churn 2 --stage Production" in said(stage)
    made = run("models", "alias", "churn", "2", "candidate", "--as", "bob", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output) == {
        "model": "churn", "alias": "candidate", "version": "2", "actor": "bob"
    }  # fmt: skip
    assert str(client.get_model_version_by_alias("churn", "candidate").version) == "2"
    rows = list(audit_log(mloop_home).rows(action="model.alias"))
    assert [(r["actor"], r["target"], r["detail"]) for r in rows] == [
        ("bob", "churn/2", {"alias": "candidate"})
    ]
    for example in ("ab.yaml", "canary.yaml", "shadow.yaml", "blue_green.yaml"):
        applied = run("deploy", "apply", str(EXAMPLES / example))
        assert applied.exit_code == 0, (example, applied.output)


def test_approvals_show_says_approved_and_rejected():
    from mloop.cli.approvals import _past

    assert [_past(d) for d in ("approve", "reject")] == ["approved", "rejected"]
