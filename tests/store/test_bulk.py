"""Bulk inserts of tuples store what SQLAlchemy Core's executemany stores, on SQLite (driver
executemany) and PostgreSQL (COPY): converted columns, raw JSON text, NULLs, escapes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.dialects import sqlite

from mloop.store.bulk import BulkInsert

CUSTOM = sqlite.DATETIME(
    storage_format="%(year)04d/%(month)02d/%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
)
metadata = MetaData()
things = Table(
    "bulk_things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True)),
    Column("custom", DateTime().with_variant(CUSTOM, "sqlite")),
    Column("day", Date),
    Column("x", Float),
    Column("doc", JSON),
    Column("s", String(40)),
    Column("raw", JSON),
)
NAMES = ("id", "at", "custom", "day", "x", "doc", "s", "raw")
SHARED = datetime(2027, 1, 15, 9, 30, 0, 0, tzinfo=timezone(timedelta(hours=2)))
ROWS = [
    (SHARED, datetime(2027, 1, 15, 9, 30, 1), date(2027, 1, 15), 0.1, {"b": [1], "a": "é"}),
    (SHARED, datetime(1, 1, 1), date(1, 1, 1), 1, None),
    (datetime(2027, 1, 15, 7, 0, 0, 123, tzinfo=UTC), None, None, None, [1, r"\N"]),
    (None, datetime(9999, 12, 31), date(9999, 12, 31), 1e-300, "x\ty"),
]
STRINGS = ["tab\there", r"\N", None, "new\nline \\ é"]
RAW = ['{"z":1,"a":2}', "null", None, r'"\\."']


def _rows(first: int, raw: bool = True) -> list[tuple]:
    return [
        (first + i, *row, STRINGS[i], *((RAW[i],) if raw else ())) for i, row in enumerate(ROWS)
    ]


def _stored(database, first: int) -> list[tuple]:
    casts = ", ".join(f"cast({name} as text)" for name in NAMES[1:])
    query = f"select {casts} from bulk_things where id between {first} and {first + 9} order by id"
    with database.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


@pytest.fixture
def table(database):
    metadata.create_all(database.engine)
    return things


def test_every_path_stores_what_sqlalchemy_core_stores(database, table):
    dialect = database.engine.dialect
    insert = BulkInsert(table, NAMES, raw=("raw",))
    with database.engine.begin() as conn:
        insert(conn, _rows(1))
    assert insert._plans[dialect][0] == ("executemany" if database.is_sqlite else "copy")
    fallback = BulkInsert(table, NAMES, raw=("raw",))
    fallback._plans[dialect] = ("core", "", [])  # the path other drivers take
    with database.engine.begin() as conn:
        fallback(conn, _rows(11))
    # the reference: SQLAlchemy Core's own executemany of dicts (every column but `raw`)
    with database.engine.begin() as conn:
        conn.execute(table.insert(), [dict(zip(NAMES, r, strict=False)) for r in _rows(21, False)])
    fast = _stored(database, 1)
    assert len(fast) == 4 and fast == _stored(database, 11)
    assert [row[:-1] for row in fast] == [row[:-1] for row in _stored(database, 21)]
    assert [row[-1] for row in fast] == RAW
    readable = [c for c in table.c if c.name not in ("custom", "raw")]  # as Python values
    with database.engine.connect() as conn:
        read = {row.id: row for row in conn.execute(select(*readable))}
    for i in range(4):
        assert read[1 + i] == (1 + i, *read[21 + i][1:])
    if database.is_sqlite:  # a custom storage format is kept, not replaced by the fast one
        assert fast[0][:2] == ("2027-01-15 09:30:00.000000", "2027/01/15 09:30:01")


def test_nothing_to_insert_is_a_no_op(database, table):
    with database.engine.begin() as conn:
        BulkInsert(table, NAMES)(conn, [])
    assert _stored(database, 1) == []
