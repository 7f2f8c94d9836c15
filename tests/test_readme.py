"""The README stays true to the code: every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

from mloop.settings import Settings

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_shows_the_two_commands_first():
    assert README.index("make demo") < README.index("## The loop")
    assert "make test" in README


def test_every_setting_is_in_the_configuration_table():
    for name in Settings.model_fields:
        assert f"`MLOOP_{name.upper()}`" in README, f"MLOOP_{name.upper()} missing from README"


def test_every_command_is_in_the_readme():
    import typer

    from mloop.cli.main import app

    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        subs = getattr(command, "commands", None) or {None: command}
        for sub in subs:
            usage = f"mloop {name}" + (f" {sub}" if sub else "")
            assert usage in README, f"`{usage}` is not documented in README.md"
