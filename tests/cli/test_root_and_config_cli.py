"""The CLI root and `mloop config`, driven through Typer's runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mloop import __version__
from mloop.cli.main import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mloop {__version__}"


def test_every_command_has_help_with_an_example():
    import typer

    root = typer.main.get_command(app)

    def walk(command, path):
        yield path, command
        if hasattr(command, "commands"):  # a group (Typer vendors its own click)
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    checked = 0
    for path, _command in walk(root, []):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"`mloop {' '.join(path)} --help` shows no example"
        checked += 1
    assert checked >= 6


def test_config_json_shows_values_and_sources(mloop_home, monkeypatch):
    monkeypatch.setenv("MLOOP_PORT", "9300")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["port"] == {"value": 9300, "source": "env MLOOP_PORT"}
    assert data["database_url"]["source"] == "derived from MLOOP_HOME"
    assert data["home"]["value"] == str(mloop_home.home)


def test_config_table(mloop_home):
    result = runner.invoke(app, ["config"], env={"COLUMNS": "240"})
    assert result.exit_code == 0
    assert "MLOOP_TRACKING_URI" in result.output
    assert "default" in result.output
