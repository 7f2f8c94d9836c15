"""`mloop --help` and the CLI's root import stay light: no ML library, no web stack, no ORM.

Start-up time decides how a CLI feels and how fast an autoscaler adds a server, so the heavy
libraries load only in the commands that use them (each such import marked `# lazy:`).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sklearn", "mlflow", "pandas", "numpy", "sqlalchemy", "fastapi", "uvicorn", "scipy")


def test_the_cli_root_imports_no_heavy_library():
    probe = (
        "import json, sys; import mloop.cli.main; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def _modules_after(argv: list[str]) -> set[str]:
    """Modules loaded by one `mloop ...` run in a fresh interpreter (its exit status ignored)."""
    probe = (
        "import json, sys\n"
        "from mloop.cli.main import main\n"
        f"sys.argv = ['mloop', *{argv!r}]\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print('\\nMODULES' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.rsplit("MODULES", 1)[1]))


def test_root_help_imports_no_command_module_nor_settings():
    loaded = _modules_after(["--help"])
    commands = sorted(m for m in loaded if m.startswith("mloop.cli.") and m != "mloop.cli.lazy")
    assert commands == ["mloop.cli.console", "mloop.cli.main"]
    assert not {"pydantic", "pydantic_settings", "mloop.settings", *HEAVY} & loaded


def test_a_command_imports_its_own_module_only():
    loaded = _modules_after(["serve", "--help"])
    assert "mloop.cli.serve" in loaded
    assert not {"mloop.cli.train", "mloop.cli.deploy", "mloop.cli.approvals"} & loaded
    assert not set(HEAVY) & loaded  # the server stack loads when serving, not for --help


def test_the_help_table_matches_each_commands_own_help():
    import typer

    from mloop.cli.main import COMMANDS, app

    root = typer.main.get_command(app)
    for name, entry in COMMANDS.items():
        own = " ".join((root.commands[name].help or "").split("\n\n")[0].split())
        assert entry.help == own, f"mloop.cli.main.COMMANDS[{name!r}] differs from its docstring"


def test_the_serve_supervisor_imports_no_ml_library():
    # what `mloop serve --workers N` imports before starting its workers (cli/serve.py)
    probe = (
        "import json, sys, uvicorn\n"
        "from mloop.cli.platform import command_platform\n"
        "from mloop.registry.resolve import check_reference\n"
        "from mloop.security.mode import auth_enabled\n"
        "from mloop.serving.server import tune_gc\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert not {"sklearn", "mlflow", "pandas", "numpy", "mloop.serving.app"} & loaded
    # nor the authenticator's stack: it only prints whether auth is on (security.mode)
    assert not {"mloop.security.auth", "fastapi", "starlette", "jwt"} & loaded


def test_the_auth_switch_is_the_authenticators():
    from mloop.security import auth, mode

    assert auth.auth_enabled is mode.auth_enabled
    assert auth.is_loopback is mode.is_loopback


def test_the_workers_protocol_and_model_variable_are_the_servings():
    from uvicorn.importer import import_from_string

    from mloop.cli import serve
    from mloop.serving.app import MODEL_ENV
    from mloop.serving.http import HTTP_PROTOCOL

    assert serve.MODEL_ENV == MODEL_ENV
    protocol = import_from_string(serve.WORKER_HTTP)
    assert protocol is HTTP_PROTOCOL or HTTP_PROTOCOL == "auto"
