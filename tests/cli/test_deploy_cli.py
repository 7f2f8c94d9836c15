"""`mloop deploy ...` through Typer's runner: output, exit codes, and errors with hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.settings import reset_settings
from tests.support import deploykit

EXAMPLES = Path(__file__).parents[2] / "examples" / "deployments"
runner = CliRunner()


@pytest.fixture
def home(mloop_home):
    deploykit.register_versions(mloop_home)
    return mloop_home


def run(*args: str):
    reset_settings()
    result = runner.invoke(app, list(args))
    reset_settings()
    return result


def said(result) -> str:
    """The output with Rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_apply_status_shift_promote_rollback_history_report(home, tmp_path):
    applied = run("deploy", "apply", str(EXAMPLES / "ab.yaml"))
    assert applied.exit_code == 0, applied.output
    assert "applied deployment churn-ab (revision 1)" in applied.output
    assert "churn-ab" in run("deploy", "list").output
    listed = json.loads(run("deploy", "list", "--json").output)
    assert listed[0]["spec"]["policy"] == "ab"
    status = run("deploy", "status", "churn-ab")
    assert status.exit_code == 0 and "challenger" in status.output and "90" in status.output
    shifted = run("deploy", "shift", "churn-ab", "--to", "challenger", "--percent", "50")
    assert shifted.exit_code == 0 and "revision 2" in shifted.output
    data = json.loads(run("deploy", "status", "churn-ab", "--json").output)
    assert [v["share"] for v in data["variants"]] == [50, 50]
    assert run("deploy", "promote", "churn-ab").exit_code == 0
    assert run("deploy", "rollback", "churn-ab").exit_code == 0
    history = json.loads(run("deploy", "history", "churn-ab", "--json").output)
    assert [h["reason"] for h in history] == ["apply", "shift", "promote", "rollback"]
    assert history[0]["actor"].startswith("local")
    assert "rollback" in run("deploy", "history", "churn-ab").output
    page = tmp_path / "report.html"
    report = run("deploy", "report", "churn-ab", "--html", str(page))
    assert report.exit_code == 0, report.output
    assert "recommendation: not yet significant" in report.output
    assert page.read_text().startswith("<!doctype html>")
    assert run("deploy", "delete", "churn-ab", "--yes").exit_code == 0
    assert "no deployments yet" in run("deploy", "list").output


def test_canary_status_shows_progress(home):
    assert run("deploy", "apply", str(EXAMPLES / "canary.yaml")).exit_code == 0
    status = run("deploy", "status", "churn-canary")
    assert "canary running at 5%" in status.output


def test_errors_name_the_problem_and_exit_with_their_code(home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "ab.yaml").read_text().replace("weight: 10", "weight: 20"))
    refused = run("deploy", "apply", str(bad))
    assert refused.exit_code == 2 and "variant weights sum to 110, not 100" in said(refused)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text((EXAMPLES / "ab.yaml").read_text().replace("churn@candidate", "churn/9"))
    missing = run("deploy", "apply", str(unknown))
    assert missing.exit_code == 3 and "model 'churn/9' does not resolve" in said(missing)
    assert run("deploy", "list", "--json").output.strip() == "[]"  # nothing changed
    nothing = run("deploy", "status", "ghost")
    assert nothing.exit_code == 3 and "deployment 'ghost' not found" in said(nothing)
    assert "hint: create it: mloop deploy apply SPEC.yaml" in said(nothing)
    assert run("deploy", "apply", str(EXAMPLES / "single.yaml")).exit_code == 0
    stale = run("deploy", "apply", str(EXAMPLES / "single.yaml"), "--revision", "7")
    assert stale.exit_code == 4 and "changed since revision 7" in said(stale)
    first = run("deploy", "rollback", "churn")
    assert first.exit_code == 4 and "no earlier revision" in said(first)


def test_every_deploy_command_has_an_example():
    import typer

    group = typer.main.get_command(app).commands["deploy"]
    assert "Example:" in (group.help or "")
    for name, command in group.commands.items():
        assert "Example: mloop deploy " + name in (command.help or ""), name
