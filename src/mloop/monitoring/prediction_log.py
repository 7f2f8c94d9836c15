"""The prediction log: every answered row lands in the platform DB, off the response path.

The server only appends one item per request to a bounded queue (`mloop.background`); a
background thread wakes at most every `interval` seconds under load and writes everything
queued in one transaction per `batch_rows` rows, as plain tuples handed to the driver
(`mloop.store.bulk`: executemany on SQLite, COPY on PostgreSQL), each row's canonical JSON
(sorted keys) serialized once by orjson and used twice, for `input_sha256` and as the stored
`features` text. When the queue is full the rows are dropped and counted instead of blocking
the response.

When the database is unreachable the rows go to a disk spool (`mloop.spool`, given
`spool_dir`), written to the database once it answers again, so an outage, even one the
process does not survive, delays rows instead of losing them; without a spool (or when its disk
refuses), the thread retries the same transaction with backoff (`keep_trying`) for up to
`retry_seconds` while new rows queue up in memory behind it. `outage` says what is failing
(`/ready` shows it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from mloop.background import BackgroundQueue, Outage
from mloop.spool import Spool, SpooledWrites
from mloop.store import Database, PredictionRecord
from mloop.store.bulk import BulkInsert
from mloop.store.db import transient

log = logging.getLogger("mloop.prediction_log")

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
_NONE = [None]


@dataclass(frozen=True)
class PredictionBatch:
    """What one request answered: the rows as received and what the model said.

    Rows are dicts by column name or lists in `columns` order; the writer thread turns lists
    into dicts so the response path does no per-row work for the log.
    """

    model_name: str
    model_version: str
    created_at: datetime
    ids: Sequence[str]
    rows: Sequence[dict[str, Any] | Sequence[Any]]
    predictions: Sequence[Any]
    probabilities: Sequence[float | None]
    latency_ms: float
    columns: Sequence[str] = ()
    # Per row: why it was accepted outside its feature contract (`policy: count`), or None.
    out_of_range: Sequence[str | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _revive(row: list[Any]) -> tuple:
    """A spooled row as `_records` made it (its time was written as ISO 8601 text)."""
    row[1] = datetime.fromisoformat(row[1])
    return tuple(row)


def input_digest(row: dict[str, Any]) -> str:
    """sha256 of the row's canonical JSON (sorted keys): stable across processes and clients."""
    return hashlib.sha256(canonical_json(row)).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted-key JSON of a row or a prediction (numpy values as plain numbers)."""
    return orjson.dumps(value, option=_CANONICAL, default=_plain)


def _plain(value: Any) -> Any:
    """orjson's fallback: numpy scalars as Python numbers, anything else as its text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


_COLUMNS = (
    "id",
    "created_at",
    "model_name",
    "model_version",
    "input_sha256",
    "features",
    "prediction",
    "probability",
    "latency_ms",
    "out_of_range",
)
# features and prediction arrive as JSON text already: no second serialization
_INSERT = BulkInsert(PredictionRecord.__table__, _COLUMNS, raw=("features", "prediction"))


class PredictionLogWriter:
    """A background thread that batches prediction rows into the platform database."""

    def __init__(
        self,
        database: Database,
        *,
        log_inputs: bool = True,
        max_queue: int = 10_000,
        batch_rows: int = 500,
        interval: float = 0.2,
        on_drop: Callable[[int], None] | None = None,
        retry_seconds: float = 600.0,
        on_write_error: Callable[[], None] | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.database = database
        self.log_inputs = log_inputs
        self.outage = Outage(on_write_error)
        self.batch_rows = batch_rows
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._on_drop = on_drop
        self._writes = SpooledWrites(
            Spool(spool_dir) if spool_dir is not None else None,
            self._insert,
            what="writing prediction log rows",
            outage=self.outage,
            give_up_after=retry_seconds,
            transient=transient,
            on_lost=self._drop,
            revive=_revive,
        )
        self._queue: BackgroundQueue[PredictionBatch] = BackgroundQueue(
            "mloop-prediction-log",
            self._handle,
            max_items=max_queue,
            batch=batch_rows,
            linger=interval,
            tick=self._writes.tick,
            tick_seconds=1.0,
        )

    def submit(self, batch: PredictionBatch) -> bool:
        """Queue one request's rows without blocking; False (and counted) when dropped."""
        if self._queue.put(batch):
            return True
        self._drop(len(batch))
        return False

    def flush(self) -> None:
        """Block until every queued row is written (or dropped after a failed write)."""
        self._queue.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread. Idempotent. Rows still spooled (the
        database is away) stay on disk for the next writer of this database."""
        self._queue.close(timeout)
        self._writes.close()

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------------

    def _handle(self, batches: list[PredictionBatch]) -> None:
        """Write queued batches in transactions of about `batch_rows` rows (whole batches)."""
        chunk: list[PredictionBatch] = []
        rows = 0
        for batch in batches:
            if chunk and rows + len(batch) > self.batch_rows:
                self._write(chunk)
                chunk, rows = [], 0
            chunk.append(batch)
            rows += len(batch)
        if chunk:
            self._write(chunk)

    def _write(self, batches: list[PredictionBatch]) -> None:
        if not batches:
            return
        records = self._records(batches)
        if self._writes(records):  # the log must never take the server down: lost is counted
            self.written += len(records)

    def _insert(self, records: list[tuple]) -> None:
        with self.database.engine.begin() as connection:
            _INSERT(connection, records)

    def _records(self, batches: list[PredictionBatch]) -> list[tuple]:
        """Rows in `_COLUMNS` order: one canonical JSON text per row, digest taken from it."""
        keep = self.log_inputs
        sha256 = hashlib.sha256
        dumps = orjson.dumps
        records: list[tuple] = []
        append = records.append
        # A classifier answers a few labels over and over: each one's JSON text once per call.
        answers: dict[tuple[type, Any], str] = {}
        for batch in batches:
            columns = batch.columns
            at, name, version = batch.created_at, batch.model_name, batch.model_version
            latency = batch.latency_ms
            flagged = batch.out_of_range or _NONE * len(batch.ids)
            for prediction_id, row, prediction, probability, reason in zip(
                batch.ids, batch.rows, batch.predictions, batch.probabilities, flagged, strict=True
            ):
                if type(row) is not dict:
                    row = dict(zip(columns, row, strict=True))
                text = dumps(row, option=_CANONICAL, default=_plain)
                kind = type(prediction)
                if kind is str or kind is int or kind is bool:
                    answer = answers.get((kind, prediction))
                    if answer is None:
                        text_of = dumps(prediction, option=_CANONICAL, default=_plain)
                        answer = answers[(kind, prediction)] = text_of.decode()
                else:
                    answer = dumps(prediction, option=_CANONICAL, default=_plain).decode()
                append(
                    (
                        prediction_id,
                        at,
                        name,
                        version,
                        sha256(text).hexdigest(),
                        text.decode() if keep else None,
                        answer,
                        probability,
                        latency,
                        reason,
                    )
                )
        return records

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)
