"""Tables at 80 columns without a terminal keep whole headers (issue 20): wrapped or plain."""

from __future__ import annotations

import pytest
from rich.table import Table
from typer.testing import CliRunner

from mloop.cli import console as consoles
from mloop.cli.main import app
from mloop.jobs.queue import JobQueue

runner = CliRunner()
JOB_HEADERS = ("id", "kind", "status", "progress", "rows", "attempts", "model", "created")


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setattr(consoles.console, "_width", 80)
    return consoles.console


def header_line(output: str, first: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.split(" ")[0].strip("┃│ ") == first
                or line.startswith(first))  # fmt: skip
    return [cell.strip() for cell in line.replace("┃", " ").split("  ") if cell.strip()]


def test_jobs_list_keeps_every_header_and_the_whole_id(mloop_home, narrow):
    job = JobQueue.from_settings(mloop_home).submit(
        "predict", {"instances": [[1]]}, model_uri="models:/churn/1", rows=1
    )
    result = runner.invoke(app, ["jobs", "list"])
    assert result.exit_code == 0, result.output
    assert header_line(result.output, "id") == list(JOB_HEADERS), result.output
    assert job.id in result.output  # never cut to "0193a7…"
    assert "…" not in result.output


def test_config_keeps_its_headers(mloop_home, narrow):
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert header_line(result.output, "setting") == ["setting", "variable", "value", "source"]
    assert "MLOOP_TRACKING_URI" in result.output


def test_a_table_that_fits_wraps_its_cells_but_never_its_headers(narrow):
    table = Table("name", "description")
    table.add_row("churn", "word " * 40)
    with narrow.capture() as captured:
        narrow.print(table)
    text = captured.get()
    assert "┃ name " in text and "description" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
