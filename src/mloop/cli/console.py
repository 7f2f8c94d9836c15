"""Shared Rich consoles and the progress display used by long-running commands.

Tables stay readable at any width (`COLUMNS=80 mloop jobs list | less`): a column is never
narrower than its header or its longest word (cells wrap instead), and a table that cannot
fit that way is printed as plain aligned columns, with nothing cut.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

GAP = "  "  # between plain columns


class TableConsole(Console):
    """A Console whose tables keep their headers whole (wrap, or plain columns)."""

    def print(self, *objects: Any, **options: Any) -> None:  # type: ignore[override]
        fitted = [self._fit(o) if isinstance(o, Table) else o for o in objects]
        if any(isinstance(o, _PlainTable) for o in fitted):
            options.update(crop=False, soft_wrap=True)  # long lines stay whole, never cut
        super().print(*fitted, **options)

    def _fit(self, table: Table) -> Table | Text:
        if not table.show_header:
            return table
        needed = 1 if table.show_edge else -1  # the outer edges, or none
        for column in table.columns:
            header = _plain(column.header)
            column.min_width = max(column.min_width or 0, len(header))
            if column.no_wrap:
                longest = max((len(_plain(c)) for c in column.cells), default=0)
                needed += max(column.min_width, longest)
            else:
                column.overflow = "fold"  # wrap cells rather than cut them to "…"
                words = (w for c in column.cells for w in _plain(c).split())
                needed += max(column.min_width, max((len(w) for w in words), default=0))
            needed += 1 + 2 * table.padding[1]  # separator and padding
        if needed <= self.width:
            return table
        return plain_table(table)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(str(cell)).plain if isinstance(cell, str) else str(cell)


class _PlainTable(Text):
    """A table printed as plain columns (the console prints it without wrapping)."""


def plain_table(table: Table) -> Text:
    """The table as aligned plain-text columns (title first), values never cut."""
    headers = [_plain(c.header) for c in table.columns]
    rows = [[_plain(cell) for cell in c.cells] for c in table.columns]
    lines = [list(r) for r in zip(*rows, strict=True)] if rows else []
    widths = [
        max([len(h)] + [max((len(p) for p in row[i].splitlines()), default=0) for row in lines])
        for i, h in enumerate(headers)
    ]
    out = [_plain(table.title)] if table.title else []
    for row in [headers, *lines]:
        cells = [value.replace("\n", " ") for value in row]
        out.append(GAP.join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())
    return _PlainTable("\n".join(out))


console = TableConsole()
err_console = TableConsole(stderr=True)


def step_progress() -> Progress:
    """A progress display for a fixed list of named steps (train, demo)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
