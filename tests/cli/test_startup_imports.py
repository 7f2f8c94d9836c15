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
