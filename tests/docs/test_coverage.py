"""Every docs page's examples are covered: run, or marked skip/xfail with a reason."""

from __future__ import annotations

from tests.docs.markdown import KINDS, MARKER, PAGES, all_blocks, parse

BLOCKS = all_blocks()


def test_every_fence_names_its_language():
    untagged = [b.name for b in BLOCKS if not b.lang]
    assert not untagged, f"fences without a language (use text, json, bash, ...): {untagged}"


def test_every_marker_is_known_and_has_a_reason():
    for block in BLOCKS:
        if block.marker is None:
            continue
        assert block.marker in KINDS, f"{block.name}: unknown marker {block.marker_text}"
        if block.marker in ("skip", "xfail"):
            assert block.reason, f"{block.name}: {block.marker_text} needs a (reason)"
        assert block.runnable, f"{block.name}: a {block.lang} block is never run; drop the marker"


def test_no_marker_is_left_without_its_fence():
    for page in PAGES:
        lines = page.read_text().splitlines()
        markers = [n for n, line in enumerate(lines, 1) if MARKER.match(line.strip())]
        attached = {b.line for b in parse(page) if b.marker}
        for line in markers:
            following = next(
                n for n in range(line + 1, len(lines) + 2) if n > len(lines) or lines[n - 1].strip()
            )
            assert following in attached, f"{page.name}:{line}: marker not right before a fence"


def test_the_readme_has_one_quickstart():
    quick = [b for b in BLOCKS if b.marker == "quickstart"]
    assert len(quick) == 1 and quick[0].page.name == "README.md", quick


def test_pages_are_found():
    assert {p.name for p in PAGES} >= {"README.md", "serving.md", "drift.md", "jobs.md"}
    assert sum(b.runnable for b in BLOCKS) >= 30
