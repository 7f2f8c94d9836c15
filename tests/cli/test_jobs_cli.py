"""`mloop jobs list|show|cancel` and `mloop worker --burst` through Typer's runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.jobs.queue import JobQueue
from tests.support import modelkit

runner = CliRunner()


@pytest.fixture
def queue(mloop_home) -> JobQueue:
    return JobQueue.from_settings(mloop_home)


def test_an_empty_list_says_how_to_start(queue):
    result = runner.invoke(app, ["jobs", "list"])
    assert result.exit_code == 0 and "No jobs yet" in result.output


def test_list_show_and_cancel(queue):
    first = queue.submit("predict", {"instances": [[1]]}, model_uri="models:/churn/1", rows=1)
    second = queue.submit("predict", {"instances": [[2]]}, model_uri="models:/churn/1", rows=1)
    queue.complete(queue.claim("w"), {"predictions": [{"prediction": 1}], "model_name": "churn"})
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0
    assert [j["job_id"] for j in json.loads(listed.output)] == [second.id, first.id]
    table = runner.invoke(app, ["jobs", "list", "--status", "queued"])
    assert table.exit_code == 0 and second.id in table.output and first.id not in table.output
    shown = runner.invoke(app, ["jobs", "show", first.id, "--json"])
    assert json.loads(shown.output)["status"] == "succeeded"
    human = runner.invoke(app, ["jobs", "show", first.id])
    assert "succeeded" in human.output and "1 predictions from churn" in human.output
    cancelled = runner.invoke(app, ["jobs", "cancel", second.id])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    refused = runner.invoke(app, ["jobs", "cancel", first.id])
    assert refused.exit_code == 4 and "already succeeded" in refused.output


def test_unknown_ids_and_statuses_exit_with_their_codes(queue):
    missing = runner.invoke(app, ["jobs", "show", "nope"])
    assert missing.exit_code == 3 and "error: no job 'nope'" in missing.output
    assert "hint: `mloop jobs list`" in missing.output
    bad = runner.invoke(app, ["jobs", "list", "--status", "finished"])
    assert bad.exit_code == 2 and "unknown job status 'finished'" in bad.output


def test_a_burst_worker_runs_the_due_jobs_and_exits(mloop_home, queue):
    modelkit.train_and_register(mloop_home)
    rows = modelkit.json_rows(modelkit.make_frame(20)[0])
    job = queue.submit("predict", {"instances": rows}, model_uri="models:/churn/1", rows=20)
    result = runner.invoke(app, ["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert "Worker finished: succeeded 1" in result.output
    assert queue.get(job.id).result["total_count"] == 20


@pytest.mark.parametrize("command", [["jobs"], ["jobs", "list"], ["worker"], ["jobs", "cancel"]])
def test_help_has_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Example: mloop" in result.output
