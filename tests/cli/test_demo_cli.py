"""`mloop demo --no-serve` prints the README's summary and no URL of its stopped server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mloop.cli import console as consoles
from mloop.cli.main import app
from mloop.settings import reset_settings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def readme_summary() -> list[str]:
    block = README.split("`make demo` ends with a summary like this:", 1)[1]
    return block.split("```text\n", 1)[1].split("```", 1)[0].splitlines()


@pytest.mark.slow
def test_no_serve_prints_the_readme_summary_without_dead_urls(mloop_home, monkeypatch):
    monkeypatch.setattr(consoles.console, "_width", 200)
    reset_settings()
    result = runner.invoke(app, ["demo", "--rows", "800", "--requests", "20", "--no-serve"])
    assert result.exit_code == 0, result.output
    out = result.output
    said = [" ".join(line.strip("│┃ ").replace("│", " ").split()) for line in out.splitlines()]
    for line in readme_summary():
        shown = " ".join(line.split())
        if shown == "..." or "http://" in shown or "..." in shown:
            continue  # elided, or a URL of the serving demo
        if shown.startswith("bad:"):  # `kind count answer`: the answer is the server's own
            kind, answer = re.match(r"(bad: [a-z ]+?) +1 +(HTTP .*)", shown).groups()
            assert any(s.startswith(kind) and s.endswith(answer) for s in said), shown
            continue
        if shown.split(" ")[0] in ("single", "batch"):
            continue  # counts follow --requests
        assert any(shown == s or s.startswith(shown) for s in said), (shown, out)
    assert "http://" not in out  # the server has stopped: no URL of it
    assert "mloop serve churn@production" in out
    assert "MLflow UI  mlflow ui --backend-store-uri" in out
