"""Poll until a condition holds, failing with what was awaited (never asserting on time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], what: str = "condition", timeout: float = 120.0, every: float = 0.02
) -> T:
    """Call `predicate` until it returns a truthy value and return it; fail after `timeout`.

    The timeout is a safety net for a slow machine, not a check on speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout}s")
        time.sleep(every)
