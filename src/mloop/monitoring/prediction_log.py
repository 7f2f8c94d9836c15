"""The prediction log: every answered row lands in the platform DB, off the response path.

The server only appends one item per request to a bounded queue (`mloop.background`); a
background thread wakes at most every `interval` seconds under load and writes everything
queued in one transaction per `batch_rows` rows: SQLAlchemy Core `executemany` of plain
rows, each row's canonical JSON (sorted keys) serialized once by orjson and used twice, for
`input_sha256` and as the stored `features` text. When the queue is full the rows are dropped
and counted instead of blocking the response.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, bindparam
from sqlalchemy.types import TypeDecorator

from mloop.background import BackgroundQueue
from mloop.store import Database, PredictionRecord

log = logging.getLogger("mloop.prediction_log")

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


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

    def __len__(self) -> int:
        return len(self.ids)


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


class _JSONText(TypeDecorator):
    """A JSON column bound from text that is already JSON (no second serialization)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


_INSERT = PredictionRecord.__table__.insert().values(
    features=bindparam("features", type_=_JSONText()),
    prediction=bindparam("prediction", type_=_JSONText()),
)


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
    ) -> None:
        self.database = database
        self.log_inputs = log_inputs
        self.batch_rows = batch_rows
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._on_drop = on_drop
        self._queue: BackgroundQueue[PredictionBatch] = BackgroundQueue(
            "mloop-prediction-log",
            self._handle,
            max_items=max_queue,
            batch=batch_rows,
            linger=interval,
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
        """Write what is queued, then stop the thread. Idempotent."""
        self._queue.close(timeout)

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
        records = [record for batch in batches for record in self._records(batch)]
        try:
            with self.database.engine.begin() as connection:
                connection.execute(_INSERT, records)
        except Exception:  # the log must never take the server down
            log.exception("cannot write %d prediction log rows", len(records))
            self._drop(len(records))
            return
        self.written += len(records)

    def _records(self, batch: PredictionBatch) -> list[dict[str, Any]]:
        """Plain insert parameters: one canonical JSON text per row, digest taken from it."""
        columns = batch.columns
        keep = self.log_inputs
        sha256 = hashlib.sha256
        common = {
            "created_at": batch.created_at,
            "model_name": batch.model_name,
            "model_version": batch.model_version,
            "latency_ms": batch.latency_ms,
        }
        records = []
        for prediction_id, row, prediction, probability in zip(
            batch.ids, batch.rows, batch.predictions, batch.probabilities, strict=True
        ):
            text = canonical_json(
                row if type(row) is dict else dict(zip(columns, row, strict=True))
            )
            records.append(
                {
                    **common,
                    "id": prediction_id,
                    "input_sha256": sha256(text).hexdigest(),
                    "features": text.decode() if keep else None,
                    "prediction": canonical_json(prediction).decode(),
                    "probability": probability,
                }
            )
        return records

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)
