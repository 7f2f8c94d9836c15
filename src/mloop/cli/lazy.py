"""Commands of the root CLI group that are imported only when used.

`mloop --help` lists every command from a table (name, module, attribute, one help line)
without importing the command modules, and `mloop serve` imports the serve module only: each
command module pulls in its own stack (pydantic settings, the ORM, ML libraries), which would
otherwise load for every invocation. tests/cli/test_startup_imports.py checks that the table's
help lines match the commands' own docstrings.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import NamedTuple

import typer
from typer.core import TyperCommand


class Entry(NamedTuple):
    """Where a root command lives: `mloop.cli.<module>.<attribute>` (a function or a Typer)."""

    module: str
    attribute: str
    help: str


# Loaded click commands, shared by every root group built from the same table (tests build
# several); a Typer sub-app gains extra commands once only (features: the Feast ones).
_LOADED: dict = {}


def load(name: str, entry: Entry):
    """The click command for one table entry, imported and converted by Typer on first use."""
    if name not in _LOADED:
        target = getattr(importlib.import_module(f"mloop.cli.{entry.module}"), entry.attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            if name == "features":  # Feast's commands join the features group
                from mloop.cli import feast_cmd  # lazy: with the features group

                feast_cmd.register(target)
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        _LOADED[name] = typer.main.get_group(holder).commands[name]
    return _LOADED[name]


class LazyCommands(MutableMapping):
    """A root group's commands: the eagerly registered ones plus the table, imported on access.

    Listing the names imports nothing; reading a command imports its module. While the group
    formats its help (`listing`), unloaded commands are shown by their table line instead.
    """

    def __init__(self, eager: MutableMapping, table: dict[str, Entry]) -> None:
        self.eager = dict(eager)
        self.table = table
        self.listing = False

    def __getitem__(self, name: str):
        if name in self.eager:
            return self.eager[name]
        entry = self.table[name]  # KeyError: no such command
        if self.listing and name not in _LOADED:
            return TyperCommand(name=name, help=entry.help)
        return load(name, entry)

    def __setitem__(self, name: str, command) -> None:
        self.eager[name] = command

    def __delitem__(self, name: str) -> None:
        del self.eager[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.eager
        yield from (name for name in self.table if name not in self.eager)

    def __len__(self) -> int:
        return len(set(self.eager) | set(self.table))
