"""Fenced code blocks of the docs, with the `<!-- doc-test: ... -->` marker before each.

A marker is an HTML comment on the line right before the fence (blank lines allowed between):

    <!-- doc-test: skip (a server left running) -->        not run; the reason is required
    <!-- doc-test: xfail (issue 20 item 5, fixed by ...) -->  run, expected to fail
    <!-- doc-test: quickstart -->                          run by test_quickstart.py instead

Blocks in RUN_LANGUAGES are examples: each is run or carries a skip with a reason. Every other
fence must name its language (`text`, `json`, `yaml`, ...), so an example cannot hide in an
untagged fence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
RUN_LANGUAGES = SHELL | {"http", "python", "py"}
MARKER = re.compile(r"<!--\s*doc-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>.*)\))?\s*-->")
KINDS = {"skip", "xfail", "quickstart"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None = None  # skip | xfail | quickstart
    reason: str | None = None
    marker_text: str | None = None  # the raw comment, for error messages

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUN_LANGUAGES


def _strip_indent(lines: list[str], indent: str) -> list[str]:
    return [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines]


def parse(page: Path) -> list[Block]:
    """Every fenced block of `page`, in order."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        closing = opening["indent"] + opening["fence"]
        while end < len(lines) and lines[end].rstrip() != closing:
            end += 1
        marker = reason = raw = None
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and (found := MARKER.match(lines[before].strip())):
            marker, raw = found["kind"], found.group(0)
            reason = (found["reason"] or "").strip() or None
        body = _strip_indent(lines[index + 1 : end], opening["indent"])
        blocks.append(
            Block(page, index + 1, opening["lang"].lower(), "\n".join(body), marker, reason, raw)
        )
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in parse(page)]
