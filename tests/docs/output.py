"""Check a command's output against what the docs show after it.

JSON shown (`{...}`, optionally after a status code) must have the same keys, wherever they
are; values are examples (ids, versions, probabilities differ). Text shown must appear line
by line, with numbers and `...` standing for any value.
"""

from __future__ import annotations

import json
import re
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BOX = re.compile(r"[│┃║|]")  # table borders: compare the cells' text
NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(keys_of(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(v) for v in value))
    return set()


def expected_status(expected: str) -> tuple[int | None, str]:
    found = re.match(r"\s*(\d{3})\s+(.*)", expected, re.S)
    return (int(found[1]), found[2]) if found else (None, expected)


def line_pattern(line: str) -> re.Pattern:
    pattern = ""
    for part in re.split(r"(\.\.\.|…|\s+)", line.strip()):
        if part in ("...", "…"):
            pattern += ".*"
        elif part.isspace():
            pattern += r"\s+"
        else:
            pieces = NUMBER.split(part)
            numbers = [r"[-+]?[\d.,e+-]+"] * (len(pieces) - 1)
            pattern += "".join(
                re.escape(p) + (numbers[i] if i < len(numbers) else "")
                for i, p in enumerate(pieces)
            )
    return re.compile(pattern)


def mismatch(expected: str, actual: str) -> str | None:
    """None when `actual` shows what `expected` documents, else what is missing."""
    actual = BOX.sub(" ", ANSI.sub("", actual))
    _, shown = expected_status(expected)
    if shown.lstrip().startswith(("{", "[")):
        try:
            answer = json.loads(actual)
        except ValueError:
            return f"the docs show JSON, the command printed: {actual[:300]!r}"
        wanted = set(re.findall(r'"([\w.-]+)"\s*:', shown))
        missing = sorted(wanted - keys_of(answer))
        return f"keys shown in the docs but not answered: {missing}" if missing else None
    for line in shown.splitlines():
        if line.strip() and not line_pattern(line).search(actual):
            return f"documented line not in the output: {line.strip()!r}"
    return None
