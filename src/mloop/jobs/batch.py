"""`mloop batch-predict`: score CSV/Parquet files of any size in chunks, in bounded memory.

Three stages overlap: a reader thread parses the next chunks (pyarrow releases the GIL), the
calling thread validates and predicts, a writer thread writes parts. Queues between them hold
at most two chunks each, so memory depends on `chunk_rows`, not on the size of the input.

Each output row holds the input's id column (when there is one), `prediction`, `probability`
(of the predicted class, as `/predict` answers) and `model_version`. Rows failing validation go
to the rejects file with their file, row number (1-based, header not counted) and reason.
Rerunning after an interruption skips the chunks the manifest lists as done.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from mloop.errors import ValidationError
from mloop.governance.integrity import IntegrityAudit
from mloop.jobs.output import BatchOutput
from mloop.jobs.sources import ChunkReader, column_names, estimate_rows, list_inputs
from mloop.model.loader import LoadedModel
from mloop.model.table import check_chunk, feature_columns
from mloop.registry.resolve import load_model
from mloop.settings import Settings

Progress = Callable[[int, int], None]  # (rows done, rows expected)


@dataclass
class BatchSummary:
    """What a run did, printed by the CLI and returned to Python callers."""

    model: str
    model_version: str
    engine: str
    files: int
    chunks: int
    chunks_skipped: int
    rows: int
    scored: int
    rejected: int
    seconds: float
    output: str
    rejects: str | None
    rows_per_second: float = 0.0  # rows scored in this run / seconds after the model loaded
    load_seconds: float = 0.0  # resolving and loading the model
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def id_column_for(columns: list[str], features: tuple[str, ...], wanted: str | None) -> str | None:
    """The id column to carry: `wanted`, else `id` or the first `*_id` column not a feature."""
    if wanted:
        if wanted not in columns:
            raise ValidationError(
                f"the input has no id column {wanted!r}", hint=f"columns: {', '.join(columns)}"
            )
        return wanted
    for name in columns:
        if name not in features and (name.lower() == "id" or name.lower().endswith("_id")):
            return name
    return None


def output_columns(id_column: str | None) -> list[str]:
    return ([id_column] if id_column else []) + ["prediction", "probability", "model_version"]


def rejects_columns(id_column: str | None, features: tuple[str, ...]) -> list[str]:
    return ["file", "row"] + ([id_column] if id_column else []) + ["reason", *features]


def _label_array(labels: Any) -> pa.Array:
    """Predictions as a column: numbers stay typed; answers of several values per row (lists,
    objects: `mloop.model.output`) are written as JSON text."""
    array = np.asarray(labels)
    if array.dtype.kind in "iufb":
        return pa.array(array)
    if array.dtype == object and any(isinstance(v, dict | list) for v in array):
        return pa.array([orjson.dumps(v).decode() for v in array], type=pa.string())
    return pa.array(array.astype(str), type=pa.string())


def score_table(
    model: LoadedModel, table: pa.Table, id_column: str | None
) -> tuple[pa.Table, pa.Table | None, np.ndarray]:
    """(predictions, rejected rows with reasons or None, row mask of the good rows)."""
    frame = table.to_pandas()
    checked = check_chunk(model.schema, frame)
    good = checked.good
    if len(checked.frame):
        labels, probabilities = model.predict(checked.frame)
        confidence = (
            probabilities.max(axis=1) if probabilities is not None else np.full(len(labels), np.nan)
        )
    else:
        labels = np.asarray(model.classes or [])[:0]
        confidence = np.zeros(0)
    columns: dict[str, Any] = {}
    if id_column:
        ids = table.column(id_column)
        columns[id_column] = ids.filter(pa.array(good)) if not good.all() else ids
    columns["prediction"] = _label_array(labels)
    columns["probability"] = pa.array(confidence, type=pa.float64())
    columns["model_version"] = pa.array(
        np.full(len(labels), model.version, dtype=object), type=pa.string()
    )
    predictions = pa.table(columns)
    rejects = None
    if not good.all():
        bad = ~good
        rejected = frame.loc[bad]
        data: dict[str, Any] = {"reason": checked.reasons[bad].astype(str)}
        if id_column:
            data[id_column] = rejected[id_column].astype("str").to_numpy(dtype=object)
        for name in model.schema.names:
            data[name] = rejected[name].astype("str").to_numpy(dtype=object)
        rejects = pa.table(
            {k: pa.array(v, type=pa.string(), from_pandas=True) for k, v in data.items()}
        )
    return predictions, rejects, good


class _Stop:
    """End of a stream (or the error that ended it)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _threaded(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run an iterator in a thread, at most `depth` items ahead of the consumer."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not cancelled.is_set():
                    try:
                        buffer.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if cancelled.is_set():
                    return
            buffer.put(_Stop())
        except BaseException as exc:
            buffer.put(_Stop(exc))

    thread = threading.Thread(target=produce, name="mloop-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if isinstance(item, _Stop):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        cancelled.set()


class _Writer:
    """Writes parts in a thread; at most `depth` chunks wait for it."""

    def __init__(self, output: BatchOutput, depth: int = 2) -> None:
        self.output = output
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mloop-batch-writer", daemon=True)
        self.thread.start()

    def put(self, key: str, predictions: pa.Table, rejects: pa.Table | None) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((key, predictions, rejects))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.output.write(*item)
                except BaseException as exc:
                    self.error = exc


def batch_predict(
    model_ref: str,
    input_path: str | Path,
    output: str | Path,
    *,
    settings: Settings,
    chunk_rows: int | None = None,
    id_column: str | None = None,
    restart: bool = False,
    progress: Progress | None = None,
    model: LoadedModel | None = None,
) -> BatchSummary:
    """Score every row of INPUT with the model into OUTPUT; see the module docstring."""
    started = time.perf_counter()
    chunk_rows = chunk_rows or settings.batch_chunk_rows
    files = list_inputs(input_path)
    loading = time.perf_counter()
    # a version whose files changed since registration is refused, and audited
    model = model or load_model(model_ref, settings, on_refused=IntegrityAudit(settings, "batch"))
    load_seconds = time.perf_counter() - loading
    features = model.schema.names
    headers = {path: column_names(path) for path in files}
    first = headers[files[0]]
    id_name = id_column_for(first, features, id_column)
    sources: dict[Path, list[str]] = {}  # per file, the column holding each feature
    for path, columns in headers.items():
        try:
            sources[path] = feature_columns(model.schema, columns, [id_name] if id_name else [])
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc.message}", hint=exc.hint) from exc
        if id_name and id_name not in columns:
            raise ValidationError(f"{path}: has no id column {id_name!r} (the first file has)")
    identity = {
        "model_uri": model.uri,
        "inputs": [
            {"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in files
        ],
        "chunk_rows": chunk_rows,
        "columns": output_columns(id_name),
    }
    out = BatchOutput(output, identity, restart=restart)
    ids = [id_name] if id_name else []
    expected = sum(estimate_rows(p) for p in files)
    done_rows = out.finished_rows
    counts = {"rows": 0, "scored": 0, "rejected": 0, "chunks": 0}
    order: list[str] = []
    if progress is not None:
        progress(done_rows, expected)
    writer = _Writer(out)
    try:
        for key, file_index, first_row, table, malformed in _threaded(
            _chunks(files, model, chunk_rows, out.is_done, order, sources, ids)
        ):
            path_text = str(files[file_index])
            predictions, rejects, good = score_table(model, table, id_name)
            rejects = _with_positions(rejects, good, first_row, path_text, id_name, features)
            rejects = _with_malformed(rejects, malformed, path_text, id_name, features)
            writer.put(key, predictions, rejects)
            rows = table.num_rows + len(malformed)
            counts["rows"] += rows
            counts["scored"] += predictions.num_rows
            counts["rejected"] += rows - predictions.num_rows
            counts["chunks"] += 1
            done_rows += rows
            if progress is not None:
                progress(done_rows, max(expected, done_rows))
    finally:
        writer.close()
    resumed = [out.done[k] for k in order if k in out.done]
    total_rows = sum(e["rows"] for e in resumed)
    scored = sum(e["scored"] for e in resumed)
    rejected = sum(e["rejected"] for e in resumed)
    final, rejects_path = out.finish(order)
    seconds = time.perf_counter() - started
    return BatchSummary(
        model=model.name,
        model_version=model.version,
        engine="local",
        files=len(files),
        chunks=len(order),
        chunks_skipped=len(order) - counts["chunks"],
        rows=total_rows,
        scored=scored,
        rejected=rejected,
        seconds=round(seconds, 3),
        output=str(final),
        rejects=str(rejects_path) if rejects_path else None,
        rows_per_second=round(counts["rows"] / max(seconds - load_seconds, 1e-9), 1),
        load_seconds=round(load_seconds, 3),
    )


def _chunks(
    files: list[Path],
    model: LoadedModel,
    chunk_rows: int,
    is_done: Callable[[str], bool],
    order: list[str],
    sources: dict[Path, list[str]],
    ids: list[str],
) -> Iterator[tuple[str, int, int, pa.Table, list]]:
    """(key, file index, first row, table, malformed lines) of every chunk not yet done.

    Tables name their feature columns as the model does (`sources`: the file's column per
    feature, which for a tensor model may be any names)."""
    for file_index, path in enumerate(files):
        reader = ChunkReader(
            path, model.schema, chunk_rows, columns=[*sources[path], *ids], sources=sources[path]
        )
        first_row = 0
        for chunk_index, table in enumerate(reader):
            key = f"{file_index:05d}:{chunk_index:06d}"
            order.append(key)
            malformed = list(reader.malformed)
            reader.malformed.clear()
            if not is_done(key):
                yield key, file_index, first_row, table, malformed
            first_row += table.num_rows


def _with_positions(rejects, good, first_row, path_text, id_name, features) -> pa.Table | None:
    """Prefix rejected rows with their file and 1-based row number."""
    if rejects is None:
        return None
    rows = np.flatnonzero(~good) + first_row + 1
    columns = {"file": pa.array([path_text] * len(rows)), "row": pa.array(rows)}
    if id_name:
        columns[id_name] = rejects.column(id_name)
    columns["reason"] = rejects.column("reason")
    for name in features:
        columns[name] = rejects.column(name)
    return pa.table(columns)


def _with_malformed(rejects, malformed, path_text, id_name, features) -> pa.Table | None:
    """Add lines the CSV reader could not split (their raw text goes in the first feature)."""
    if not malformed:
        return rejects
    columns: dict[str, list[Any]] = {
        "file": [path_text] * len(malformed),
        "row": [m.line - 1 if m.line is not None else None for m in malformed],
    }
    if id_name:
        columns[id_name] = [None] * len(malformed)
    columns["reason"] = [
        f"line {m.line}: {m.reason}" if m.line is not None else m.reason for m in malformed
    ]
    for index, name in enumerate(features):
        columns[name] = [m.text if index == 0 else None for m in malformed]
    extra = pa.table(
        {k: pa.array(v, type=pa.int64() if k == "row" else pa.string()) for k, v in columns.items()}
    )
    if rejects is None:
        return extra
    return pa.concat_tables([rejects, extra.cast(rejects.schema)])
