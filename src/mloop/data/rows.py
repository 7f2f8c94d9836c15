"""Write a stream of row dicts as JSON Lines or Parquet: the format of every `export` command.

Rows arrive as an iterator (a table read in chunks) and are written in chunks, so an export
never holds the whole table. Parquet gets an explicit schema (`columns`: name to arrow type
name; `json` stores the value as JSON text), so a first chunk of nulls cannot fix a wrong type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mloop.errors import ValidationError

FORMATS = ("jsonl", "parquet")
_CHUNK = 5000


def export_format(path: Path | None, given: str | None) -> str:
    """`jsonl` or `parquet`: as given, else from the file extension (stdout is JSON Lines)."""
    if given:
        if given not in FORMATS:
            raise ValidationError(f"invalid --format {given!r}: use jsonl or parquet")
        if given == "parquet" and path is None:
            raise ValidationError("Parquet needs a file: add --out FILE.parquet")
        return given
    if path is not None and path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    return "jsonl"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def write_jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One sorted-keys JSON object per line; returns how many rows."""
    count = 0
    for row in rows:
        out.write(json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True) + "\n")
        count += 1
    return count


def write_parquet(rows: Iterable[dict[str, Any]], path: Path, columns: dict[str, str]) -> int:
    """Rows to a Parquet file with the schema `columns` (written even when there are none)."""
    schema = pa.schema([(name, _arrow(kind)) for name, kind in columns.items()])
    encoded = {name for name, kind in columns.items() if kind == "json"}
    count = 0
    iterator: Iterator[dict[str, Any]] = iter(rows)
    with pq.ParquetWriter(str(path), schema) as writer:
        while chunk := list(islice(iterator, _CHUNK)):
            data = {
                name: [
                    _json(row.get(name)) if name in encoded else _plain(row.get(name))
                    for row in chunk
                ]
                for name in columns
            }
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            count += len(chunk)
    return count


def write_rows(
    rows: Iterable[dict[str, Any]],
    path: Path | None,
    fmt: str,
    columns: dict[str, str],
    out: IO[str],
) -> int:
    """Rows to `path` in `fmt`, or to `out` (stdout) as JSON Lines when `path` is None."""
    if path is None:
        return write_jsonl(rows, out)
    if fmt == "parquet":
        return write_parquet(rows, path, columns)
    with open(path, "w", encoding="utf-8") as handle:
        return write_jsonl(rows, handle)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _arrow(kind: str) -> pa.DataType:
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "json": pa.string(),
        "time": pa.string(),
    }[kind]
