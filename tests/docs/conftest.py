"""Session fixtures of the docs tests: the template store and one world per page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.world import World, build_template


@pytest.fixture(scope="session")
def docs_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("docs-template")
    return folder, build_template(folder)


@pytest.fixture(scope="session")
def docs_worlds(
    docs_template: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, World]]:
    """page name -> its World, made on first use; servers stopped at the session's end."""
    template, given = docs_template
    root = tmp_path_factory.mktemp("docs-pages")
    worlds: dict[str, World] = {}

    class Worlds(dict):
        def __missing__(self, page: str) -> World:
            world = World.copy_of(template, root / page.replace("/", "_"), given)
            self[page] = worlds[page] = world
            return world

    yield Worlds()
    for world in worlds.values():
        world.close()
