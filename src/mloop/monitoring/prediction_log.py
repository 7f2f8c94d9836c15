"""The prediction log: every answered row lands in the platform DB, off the response path.

The server only puts one item per request on a bounded queue; a background thread turns items
into `PredictionRecord` rows (sha256 of the row's canonical JSON, the raw row when
`log_inputs`) and inserts them in batches (up to `batch_rows` rows, or every `interval`
seconds). When the queue is full the rows are dropped and counted instead of blocking the
response.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert

from mloop.store import Database, PredictionRecord

log = logging.getLogger("mloop.prediction_log")

_STOP = object()


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
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mloop-prediction-log", daemon=True)
        self._thread.start()

    def submit(self, batch: PredictionBatch) -> bool:
        """Queue one request's rows without blocking; False (and counted) when dropped."""
        if self._closed:
            self._drop(len(batch))
            return False
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._drop(len(batch))
            return False
        return True

    def flush(self) -> None:
        """Block until every queued row is written (or dropped after a failed write)."""
        self._queue.join()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            pending = [item]
            rows = 0 if item is _STOP else len(item)
            stopping = item is _STOP
            # Gather more items for up to `interval` seconds or `batch_rows` rows.
            while not stopping and rows < self.batch_rows:
                try:
                    item = self._queue.get(timeout=self.interval)
                except queue.Empty:
                    break
                pending.append(item)
                if item is _STOP:
                    stopping = True
                else:
                    rows += len(item)
            self._write([b for b in pending if b is not _STOP])
            for _ in pending:
                self._queue.task_done()
            if stopping:
                return

    def _write(self, batches: list[PredictionBatch]) -> None:
        if not batches:
            return
        records = [record for batch in batches for record in self._records(batch)]
        try:
            with self.database.session() as session:
                session.execute(insert(PredictionRecord), records)
        except Exception:  # the log must never take the server down
            log.exception("cannot write %d prediction log rows", len(records))
            self._drop(len(records))
            return
        self.written += len(records)

    def _records(self, batch: PredictionBatch) -> list[dict[str, Any]]:
        columns = batch.columns
        rows = [
            r if isinstance(r, dict) else dict(zip(columns, r, strict=True)) for r in batch.rows
        ]
        return [
            {
                "id": prediction_id,
                "created_at": batch.created_at,
                "model_name": batch.model_name,
                "model_version": batch.model_version,
                "input_sha256": input_digest(row),
                "features": row if self.log_inputs else None,
                "prediction": prediction,
                "probability": probability,
                "latency_ms": batch.latency_ms,
            }
            for prediction_id, row, prediction, probability in zip(
                batch.ids, rows, batch.predictions, batch.probabilities, strict=True
            )
        ]

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)
