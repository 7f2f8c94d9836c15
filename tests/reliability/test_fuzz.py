"""Runs the API fuzzing (`fuzz_cases.py`) in a fresh interpreter, as one test of the suite.

In the middle of the whole suite (server threads of earlier tests still winding down, deep
caches of other libraries) hypothesis once failed with CPython 3.11.7's "SystemError: AST
constructor recursion depth mismatch" (python/cpython#106905) while describing one of
schemathesis' lambdas; the same cases run alone passed every time. A fresh interpreter gives the
fuzzer the process it was proven in, and the suite still fails on any failing case.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fuzz

CASES = Path(__file__).with_name("fuzz_cases.py")


def test_the_whole_api_fuzzed_in_a_fresh_interpreter(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(CASES),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'fuzz'}",
        ],  # fmt: skip
        cwd=CASES.parents[2],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    # exit 0 only when every case passed and the case count held (5 when nothing ran)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
