"""The README's step by step session, exactly as written, in a fresh folder.

No MLOOP_HOME: the commands use the default `./.mloop` of a new working directory (with the
checkout's `examples/` in it), the default training config, a real `mloop serve` (on a free
port instead of 8000, which another process may hold) and the documented curl.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.docs import output
from tests.docs.markdown import ROOT, all_blocks
from tests.docs.runners import run_shell
from tests.docs.world import MLOOP, World, environment

pytestmark = pytest.mark.slow


def test_readme_quickstart_runs_as_written(tmp_path):
    (block,) = [b for b in all_blocks() if b.marker == "quickstart"]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = environment(tmp_path)
    del env["MLOOP_HOME"]
    world = World(tmp_path, given={}, env=env)

    transcript = run_shell(block, world)

    assert (tmp_path / ".mloop" / "mlflow.db").exists()
    commands = [command for command, _ in transcript]
    assert commands[0].startswith("mloop data churn") and commands[-1].startswith("curl")
    answer = json.loads(transcript[-1][1])
    assert answer["model_name"] == "churn" and answer["model_version"] == "1", answer
    assert answer["prediction"] in (0, 1) and 0.0 <= answer["probability"] <= 1.0
    assert {"probabilities", "prediction_id", "latency_ms"} <= set(answer)


def test_readme_demo_summary_is_what_the_demo_prints(tmp_path):
    (summary,) = [b for b in all_blocks() if b.lang == "text" and "is in Production" in b.text]
    shown = summary.text.split("\nOpen:")[0]  # --no-serve names `mloop serve` instead of URLs
    env = environment(tmp_path)
    del env["MLOOP_HOME"]
    done = subprocess.run(
        [MLOOP, "demo", "--no-serve", "--rows", "2000"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert output.mismatch(shown, printed) is None
    assert "mloop serve churn@production" in printed  # what serves the model again
