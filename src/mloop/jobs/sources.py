"""Stream CSV and Parquet files (or folders of them) in chunks of a fixed number of rows.

Chunk `k` of a file is always rows `[k * chunk_rows, (k + 1) * chunk_rows)`, whatever the
reader's block sizes, so a rerun finds the same chunks and can skip those already done.

CSV is read with pyarrow's streaming reader using the model's column types (fast, typed). If a
value does not parse as its type (`"abc"` in a number column), the file is reopened with the
feature columns as text from the first row not yet handed out, so the bad value reaches the
validator and becomes a reject instead of failing the whole run. Lines with the wrong number
of fields are set aside as rejects by the reader itself.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mloop.data.io import CSV_EXTENSIONS, PARQUET_EXTENSIONS, SUPPORTED_EXTENSIONS, table_format
from mloop.errors import NotFoundError, ValidationError
from mloop.model.schema import InputSchema

_ARROW_TYPES = {
    "double": pa.float64(),
    "float": pa.float64(),
    "long": pa.int64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.string(),
}
BLOCK_BYTES = 8 << 20


def list_inputs(path: str | Path) -> list[Path]:
    """The data files of INPUT: the file itself, or every CSV/Parquet file under a folder."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"input {str(path)!r} does not exist")
    if path.is_file():
        table_format(path)  # ValidationError for an unsupported extension
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise ValidationError(
            f"folder {str(path)!r} holds no data files",
            hint=f"put files ending in {', '.join(SUPPORTED_EXTENSIONS)} in it",
        )
    return files


def column_names(path: Path) -> list[str]:
    """The columns of a data file, read from its header or footer only."""
    try:
        if path.suffix.lower() in PARQUET_EXTENSIONS:
            return list(pq.ParquetFile(path).schema_arrow.names)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise ValidationError(f"{str(path)!r} is empty: no header line")
        return header
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(f"cannot read {str(path)!r}: {_first_line(exc)}") from exc


def estimate_rows(path: Path) -> int:
    """Rows in a file: exact for Parquet, estimated from the first MiB for CSV."""
    if path.suffix.lower() in PARQUET_EXTENSIONS:
        return pq.ParquetFile(path).metadata.num_rows
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    lines = max(sample.count(b"\n"), 1)
    if len(sample) >= size:
        return max(lines - 1, 0)
    return int(size / (len(sample) / lines))


@dataclass
class Rejected:
    """A line the CSV reader could not split into the right number of fields."""

    line: int | None
    reason: str
    text: str


@dataclass
class ChunkReader:
    """Chunks of one file as pyarrow Tables; malformed CSV lines collect in `malformed`."""

    path: Path
    schema: InputSchema
    chunk_rows: int
    columns: list[str] | None = None  # Parquet: read only these (the features and the id)
    # The file's column per feature, in feature order, when not named as the features (a
    # tensor model's value columns): tables come out with the features' names.
    sources: list[str] | None = None
    malformed: list[Rejected] = field(default_factory=list)

    def __iter__(self) -> Iterator[pa.Table]:
        if self.path.suffix.lower() in CSV_EXTENSIONS:
            tables = self._csv()
        else:
            tables = _rebatch(self._parquet_batches(), self.chunk_rows, skip=0)
        renames = self._renames()
        if not renames:
            return tables
        return (t.rename_columns([renames.get(c, c) for c in t.column_names]) for t in tables)

    def _renames(self) -> dict[str, str]:
        if self.sources is None:
            return {}
        pairs = zip(self.sources, self.schema.names, strict=True)
        return {source: name for source, name in pairs if source != name}

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            # pre_buffer=False: with it, pyarrow keeps every row group read so far until the
            # iterator ends, and memory grows with the file.
            yield from pq.ParquetFile(self.path, pre_buffer=False).iter_batches(
                batch_size=self.chunk_rows, columns=self.columns
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"cannot read {str(self.path)!r}: {_first_line(exc)}") from exc

    def _csv(self) -> Iterator[pa.Table]:
        emitted = 0
        for as_text in (False, True):
            try:
                for table in _rebatch(self._csv_batches(as_text), self.chunk_rows, skip=emitted):
                    emitted += table.num_rows
                    yield table
                return
            except pa.ArrowInvalid as exc:
                if as_text:
                    raise ValidationError(
                        f"cannot read {str(self.path)!r}: {_first_line(exc)}"
                    ) from exc
                # A value that does not parse as its column's type: read on as text.

    def _csv_batches(self, as_text: bool) -> Iterator[pa.RecordBatch]:
        names = set(column_names(self.path))
        sources = self.sources or self.schema.names
        types = {
            source: pa.string() if as_text else _ARROW_TYPES[f.type]
            for source, f in zip(sources, self.schema.features, strict=True)
            if source in names
        }
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        parse = pacsv.ParseOptions(invalid_row_handler=self._malformed)
        read = pacsv.ReadOptions(block_size=BLOCK_BYTES)
        self.malformed.clear()
        with pacsv.open_csv(
            self.path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            yield from reader

    def _malformed(self, row: Any) -> str:
        self.malformed.append(
            Rejected(
                row.number,
                f"expected {row.expected_columns} fields, got {row.actual_columns}",
                row.text,
            )
        )
        return "skip"


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int, *, skip: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last may be shorter), after skipping `skip` rows."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if skip:
            if batch.num_rows <= skip:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip)
            skip = 0
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
