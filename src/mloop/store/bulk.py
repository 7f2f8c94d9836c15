"""Bulk inserts of plain tuples for the background writers, without per-row SQLAlchemy work.

SQLAlchemy Core's executemany builds and processes one parameter dict per row, several
microseconds each; the prediction log and the audit writer insert hundreds of rows per
transaction from threads whose CPU is taken from serving. `BulkInsert` takes rows as tuples
in a fixed column order and hands them to the driver directly:

- SQLite (sqlite3): the driver's `executemany` of one `INSERT ... VALUES (?, ...)`;
- PostgreSQL (psycopg 3): `COPY ... FROM STDIN`, whose rows psycopg writes in C;
- any other driver: SQLAlchemy Core's executemany, as before.

Values go through the bind processors SQLAlchemy itself would apply for the column types
(SQLite's datetime text, floats), except in `raw` JSON columns, whose values are JSON text
already; so every path stores the same values.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_Processors = list[tuple[int, Callable[[Any], Any]]]


class _JSONText(TypeDecorator):
    """A JSON column bound from text that is already JSON (no second serialization)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


class BulkInsert:
    """An INSERT of `columns` into `table`, run for many rows given as tuples in that order;
    `raw` names JSON columns given as JSON text."""

    def __init__(self, table: Table, columns: Sequence[str], *, raw: Collection[str] = ()) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.raw = frozenset(raw)
        for name in self.raw:
            if not isinstance(table.c[name].type, JSON):
                raise TypeError(f"{table.name}.{name} is not a JSON column")
        self._core = table.insert().values(
            {
                name: bindparam(name, type_=_JSONText() if name in self.raw else table.c[name].type)
                for name in self.columns
            }
        )
        self._plans: weakref.WeakKeyDictionary[Dialect, tuple[str, str, _Processors]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, connection: Connection, rows: list[tuple]) -> None:
        """Insert `rows` in the connection's current transaction."""
        if not rows:
            return
        dialect = connection.dialect
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = self._plan(dialect)
        how, sql, processors = plan
        if how == "core":
            names = self.columns
            connection.execute(self._core, [dict(zip(names, row, strict=True)) for row in rows])
            return
        if processors:
            rows = _processed(rows, processors)
        if how == "executemany":
            connection.exec_driver_sql(sql, rows)
        else:
            raw = connection.connection.dbapi_connection
            with raw.cursor() as cursor, cursor.copy(sql) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)

    def _plan(self, dialect: Dialect) -> tuple[str, str, _Processors]:
        """How to insert on this dialect: the statement and the bind processors to apply."""
        quote = dialect.identifier_preparer.quote
        table = dialect.identifier_preparer.format_table(self.table)
        names = ", ".join(quote(name) for name in self.columns)
        processors = []
        for index, name in enumerate(self.columns):
            if name not in self.raw:
                column_type = self.table.c[name].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((index, _faster(process)))
        if dialect.name == "sqlite" and dialect.driver == "pysqlite":
            marks = ", ".join("?" * len(self.columns))
            return "executemany", f"INSERT INTO {table} ({names}) VALUES ({marks})", processors
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            return "copy", f"COPY {table} ({names}) FROM STDIN", processors
        return "core", "", []


def _processed(rows: list[tuple], processors: _Processors) -> list[tuple]:
    """Rows with the processed columns converted, column by column; a value that is the very
    object of the row before (the shared timestamp of a request's rows) is converted once."""
    columns = list(zip(*rows, strict=True))
    for index, process in processors:
        converted = []
        last = after = _NOTHING
        for value in columns[index]:
            if value is not last:
                last, after = value, process(value)
            converted.append(after)
        columns[index] = converted
    return list(zip(*columns, strict=True))


_NOTHING = object()


# Datetimes whose text must come out the same from `_iso_text` and a processor it replaces.
_PROBES = (
    datetime(2026, 5, 9, 7, 35, 25, 123456, tzinfo=UTC),
    datetime(2026, 5, 9, 7, 35, 25, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
)


def _iso_text(value: datetime) -> str:
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (twice an f-string's speed)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _faster(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A processor writing datetimes as text the way SQLite's DATETIME does ("2026-05-09
    07:35:25.123456", wall time without the offset) replaced by `_iso_text`, about twice as
    fast (no dict of fields per value); used only when it gives the same text as the processor
    on every probe."""
    try:
        same = all(process(probe) == _iso_text(probe) for probe in _PROBES)
    except Exception:
        same = False
    if not same:
        return process

    def fast(value: Any) -> Any:
        return _iso_text(value) if type(value) is datetime else process(value)

    return fast
