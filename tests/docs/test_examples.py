"""Every shell, HTTP and Python example in README.md and docs/*.md runs as written.

Run against a real store and server made for the docs (tests/docs/world.py): see
tests/docs/runners.py for what "as written" allows (the server's port, abbreviated rows).
"""

from __future__ import annotations

import pytest

from tests.docs.markdown import all_blocks
from tests.docs.runners import run_block

pytestmark = pytest.mark.slow

EXAMPLES = [b for b in all_blocks() if b.runnable and b.marker != "quickstart"]


def _param(block):
    marks = []
    if block.marker == "skip":
        marks.append(pytest.mark.skip(reason=block.reason or "no reason given"))
    elif block.marker == "xfail":
        marks.append(pytest.mark.xfail(reason=block.reason or "no reason given", strict=True))
    return pytest.param(block, id=block.name, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in EXAMPLES])
def test_example_runs(block, docs_worlds):
    world = docs_worlds[block.name.rsplit(":", 1)[0]]
    run_block(block, world)
