"""Drift of two Parquet files read by row batches: bounded memory, locally or on Ray Data.

`scan_drift(ref, cur)` never holds a whole table: it plans each column (its kind from the
Arrow schema, its fine grid from both files' Parquet min/max statistics), streams each file
in batches of `BATCH_ROWS` rows into mergeable summaries (`mloop.stats.summaries`), merges
them and decides per column. Columns the summaries cannot decide exactly as the in-memory
path would (dates, kinds forced to differ from the file's type, at most 1000 reference
values, a binned Wasserstein within its error bound of the threshold) are recomputed with
`mloop.stats.samples.detect_drift` on that one column of both files. `engine="ray"` computes
the per-batch summaries with `ray.data.read_parquet(...).map_batches(...)` and merges them on
the driver: the same code, so the same verdicts.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mloop.errors import ValidationError, require
from mloop.stats.kinds import CATEGORICAL, DATE, KINDS, NUMERIC
from mloop.stats.summaries import (
    CategoricalSummary,
    Grid,
    NumericSummary,
    Summary,
    column_drift,
    merge,
    needs_exact,
)
from mloop.stats.verdict import AUTO, DRIFT_SHARE, SMALL_REFERENCE, WASSERSTEIN, DriftResult

BATCH_ROWS = 65_536
STREAMED_METHODS = frozenset({AUTO, WASSERSTEIN})  # the others need value-level bins
ENGINES = ("local", "ray")
PARQUET_SUFFIXES = (".parquet", ".pq")  # as mloop.data.io, which this layer cannot import
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # as mloop.stats.kinds: then parsed


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is summarised: `numeric` on `grid`, `categorical`, or `exact`."""

    name: str
    kind: str  # numeric, categorical or date (the verdict's kind)
    how: str  # numeric, categorical or exact
    grid: Grid | None = None


def scan_drift(
    reference: Path,
    current: Path,
    *,
    columns: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    method: str = AUTO,
    threshold: float | None = None,
    drift_share: float = DRIFT_SHARE,
    engine: str = "local",
    on_rows: Callable[[int], None] | None = None,
) -> DriftResult:
    """Drift of `current` against `reference` (two Parquet files), streamed by row batches."""
    if engine not in ENGINES:
        raise ValidationError(f"unknown engine {engine!r}", hint=f"use one of {', '.join(ENGINES)}")
    if method not in STREAMED_METHODS:
        raise ValidationError(f"method {method} is computed in memory, not streamed",
                              hint="use --method auto or wasserstein_normed")  # fmt: skip
    files = [_open(reference), _open(current)]
    plans = plan_columns(files, columns, kinds or {})
    streamed = [p for p in plans if p.how != "exact"]
    summarize = _ray_summaries if engine == "ray" else _local_summaries
    ref = summarize(reference, streamed, None, on_rows)
    bounds = {n: (s.min, s.max) for n, s in ref.items() if isinstance(s, NumericSummary)}
    cur = summarize(current, streamed, bounds, on_rows)
    results, skipped = {}, {}
    for p in streamed:
        r, c = ref[p.name], cur[p.name]
        if columns is None and isinstance(r, CategoricalSummary) and r.looks_like_id():
            skipped[p.name] = "every value is distinct (an identifier)"
            continue
        if r.count <= SMALL_REFERENCE:  # p-value tests on raw samples
            results[p.name] = None
            continue
        verdict = column_drift(p.name, p.kind, r, c, method, threshold)
        results[p.name] = None if needs_exact(verdict, r) else verdict
    exact = [p for p in plans if p.how == "exact"] + [
        p for p in streamed if p.name in results and results[p.name] is None
    ]
    for p in exact:
        one = _exact_column(reference, current, p, kinds, method, threshold, columns is None)
        if one.columns:
            results[p.name] = one.columns[0]
        skipped.update(one.skipped)
    ordered = [results[p.name] for p in plans if p.name in results]
    rows = [f.metadata.num_rows for f in files]
    return DriftResult(ordered, rows[0], rows[1], method, drift_share, skipped=skipped)


def plan_columns(
    files: list[pq.ParquetFile], columns: list[str] | None, kinds: dict[str, str]
) -> list[ColumnPlan]:
    """Each column's kind and summary; numeric grids span both files' Parquet min/max."""
    schemas = [f.schema_arrow for f in files]
    names = columns or list(schemas[0].names)
    if not names:
        raise ValidationError("no columns to compare")
    for label, schema in zip(("reference", "current"), schemas, strict=True):
        absent = [c for c in names if c not in schema.names]
        if absent:
            raise ValidationError(f"{label} data has no column {', '.join(map(repr, absent[:5]))}",
                                  hint=f"its columns: {', '.join(schema.names[:20])}")  # fmt: skip
    dates = _iso_date_strings(files[0], names)
    plans = []
    for name in names:
        given = kinds.get(name)
        if given is not None and given not in KINDS:
            raise ValidationError(f"unknown kind {given!r} for column {name!r}")
        types = [s.field(name).type for s in schemas]
        kind, how = (DATE, "exact") if name in dates else _kind(types[0], types[1])
        if given is not None and given != kind:
            kind, how = given, "exact"
        if how == NUMERIC:
            lo, hi = _range(files, name)
            if lo is None:
                how = "exact"  # no usable Parquet statistics: the in-memory path
            else:
                plans.append(ColumnPlan(name, kind, how, Grid(lo, hi)))
                continue
        plans.append(ColumnPlan(name, kind, how))
    return plans


def _kind(ref: pa.DataType, cur: pa.DataType) -> tuple[str, str]:
    if pa.types.is_dictionary(ref):
        ref = ref.value_type
    if pa.types.is_dictionary(cur):
        cur = cur.value_type
    number = (pa.types.is_integer(ref) or pa.types.is_floating(ref)) and (
        pa.types.is_integer(cur) or pa.types.is_floating(cur)
    )
    if number:
        return NUMERIC, NUMERIC
    if _is_text(ref) and _is_text(cur):
        return CATEGORICAL, CATEGORICAL  # ISO date strings: see _categorical_counts
    if pa.types.is_boolean(ref) and pa.types.is_boolean(cur):
        return CATEGORICAL, CATEGORICAL
    if pa.types.is_temporal(ref):
        return DATE, "exact"
    return CATEGORICAL, "exact"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _iso_date_strings(parquet: pq.ParquetFile, names: list[str]) -> set[str]:
    """String columns that may hold ISO dates: their first row group's min and max look so.

    The Parquet statistics cost no read; a column they pick goes to the exact path, which
    infers its kind from the values (a false pick only costs memory for that one column).
    Without statistics, the first values are read instead.
    """
    schema, meta = parquet.schema_arrow, parquet.metadata
    strings = [n for n in names if _is_text(schema.field(n).type)]
    if not strings or not meta.num_rows:
        return set()
    leaves = [meta.schema.column(i).path for i in range(meta.num_columns)]
    found, unknown = set(), []
    for name in strings:
        st = meta.row_group(0).column(leaves.index(name)).statistics
        if st is None or not st.has_min_max:
            unknown.append(name)
        elif all(isinstance(v, str) and _ISO_DATE.match(v) for v in (st.min, st.max)):
            found.add(name)
    if unknown:
        batch = next(parquet.iter_batches(batch_size=800, columns=unknown))
        for name in unknown:
            values = [v for v in batch.column(name).to_pylist() if v is not None][:200]
            if values and all(_ISO_DATE.match(v) for v in values):
                found.add(name)
    return found


def _range(files: list[pq.ParquetFile], name: str) -> tuple[float | None, float | None]:
    """min and max of a column over both files, from the row groups' statistics."""
    lo, hi = float("inf"), float("-inf")
    for f in files:
        meta = f.metadata
        leaf = [meta.schema.column(i).path for i in range(meta.num_columns)].index(name)
        for g in range(meta.num_row_groups):
            column = meta.row_group(g).column(leaf)
            st = column.statistics
            if column.num_values == 0 or (st is not None and st.null_count == column.num_values):
                continue
            if st is None or not st.has_min_max:
                return None, None
            lo, hi = min(lo, float(st.min)), max(hi, float(st.max))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return (0.0, 1.0) if lo == float("inf") else (None, None)  # all missing, or infinities
    return lo, hi


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValidationError(f"cannot read parquet file {str(path)!r}: {exc}") from exc


def summarize_batch(
    batch: pa.RecordBatch | pa.Table,
    plans: list[ColumnPlan],
    bounds: dict[str, tuple[float, float]] | None,
) -> dict[str, Summary]:
    """One batch of rows -> a summary per planned column (mergeable with `summaries.merge`)."""
    out: dict[str, Summary] = {}
    for p in plans:
        column = batch.column(p.name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if p.how == NUMERIC:
            summary = NumericSummary(p.grid, bounds=(bounds or {}).get(p.name))
            summary.add(_floats(column))
        else:
            summary = CategoricalSummary()
            summary.add_counts(len(column), column.null_count, _categorical_counts(column))
        out[p.name] = summary
    return out


def _floats(column: pa.Array) -> np.ndarray:
    """A numeric or boolean Arrow array as float64, nulls as NaN.

    From the buffers: `to_numpy(zero_copy_only=False)` imports pandas (+0.4 s of start-up).
    """
    n, offset = len(column), column.offset
    validity, data = column.buffers()[:2]
    if pa.types.is_boolean(column.type):
        bits = np.frombuffer(data, np.uint8)
        values = np.unpackbits(bits, count=n + offset, bitorder="little")[offset:]
    else:
        t = column.type
        code = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
        dtype = np.dtype(f"{code}{t.bit_width // 8}")  # not to_pandas_dtype: imports pandas
        values = np.frombuffer(data, dtype, count=n + offset)[offset:]
    values = values.astype(np.float64, copy=values.dtype != np.float64 or column.null_count > 0)
    if column.null_count:
        bits = np.frombuffer(validity, np.uint8)
        valid = np.unpackbits(bits, count=n + offset, bitorder="little")[offset:]
        values[valid == 0] = np.nan
    return values


def _categorical_counts(column: pa.Array) -> dict[str, int]:
    """Value counts of a string, dictionary or boolean Arrow array (missing values left out)."""
    if pa.types.is_dictionary(column.type):
        codes = _floats(column.indices)
        if column.null_count:
            codes = codes[np.isfinite(codes)]
        counts = np.bincount(codes.astype(np.intp), minlength=len(column.dictionary))
        labels = column.dictionary.to_pylist()
        merged: dict[str, int] = {}
        for label, n in zip(labels, counts.tolist(), strict=True):
            if n:
                merged[str(label)] = merged.get(str(label), 0) + n
        return merged
    if pa.types.is_boolean(column.type):
        flags = _floats(column)
        yes = int(np.count_nonzero(flags == 1))
        no = int(np.count_nonzero(flags == 0))
        return {k: n for k, n in (("True", yes), ("False", no)) if n}
    import pyarrow.compute as pc  # lazy: only for strings not read as dictionaries (Ray)

    pairs = pc.value_counts(column.drop_null())
    return dict(
        zip(pairs.field("values").to_pylist(), pairs.field("counts").to_pylist(), strict=True)
    )


def _local_summaries(path, plans, bounds, on_rows) -> dict[str, Summary]:
    """Each column read on its own, batch by batch: memory is one column chunk, not a table.

    (pyarrow decodes a whole row group of the columns asked for before the first batch, so
    asking for one column at a time is what bounds memory; columns run on a thread per core.)
    """
    if not plans:
        return {}
    total = pq.ParquetFile(path).metadata.num_rows

    def one(p: ColumnPlan) -> dict[str, Summary]:
        strings = [p.name] if p.how == CATEGORICAL else []
        parquet = pq.ParquetFile(path, read_dictionary=strings)
        parts: dict[str, Summary] = {}
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[p.name]):
            parts = merge([parts, summarize_batch(batch, [p], bounds)])
        if on_rows is not None:
            on_rows(total // len(plans))
        return parts

    workers = max(1, min(os.cpu_count() or 1, len(plans)))
    try:
        if workers == 1:
            return merge([one(p) for p in plans])
        with ThreadPoolExecutor(workers, thread_name_prefix="mloop-scan") as pool:
            return merge(list(pool.map(one, plans)))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read parquet file {str(path)!r}: {exc}") from exc


def _ray_summaries(path, plans, bounds, on_rows) -> dict[str, Summary]:
    """Per-block summaries on Ray Data workers (pickled, one row per batch), merged here."""
    if not plans:
        return {}
    ray = require("ray", "ray")
    require("ray.data", "ray")
    if not ray.is_initialized():
        options = {"include_dashboard": False, "log_to_driver": False}
        if os.environ.get("RAY_ADDRESS"):
            options["address"] = os.environ["RAY_ADDRESS"]
        ray.init(**options)
    dataset = ray.data.read_parquet(str(path)).select_columns([p.name for p in plans])
    parts = dataset.map_batches(
        _summary_rows,
        batch_format="pyarrow",
        batch_size=BATCH_ROWS,
        fn_kwargs={"plans": plans, "bounds": bounds},
    )
    merged: dict[str, Summary] = {}
    for row in parts.iter_rows():
        merged = merge([merged, pickle.loads(row["summary"])])
        if on_rows is not None:
            on_rows(int(row["rows"]))
    return merged


def _summary_rows(batch: pa.Table, plans, bounds) -> dict[str, list]:
    """Ray Data map_batches function: a batch -> one row holding its pickled summaries."""
    return {
        "summary": [pickle.dumps(summarize_batch(batch, plans, bounds))],
        "rows": [batch.num_rows],
    }


def _exact_column(reference, current, p: ColumnPlan, kinds, method, threshold, skip_ids):
    """One column of both files in memory, through the exact in-memory path."""
    from mloop.stats.samples import detect_drift  # lazy: pandas and scipy.stats, rarely needed

    frames = [pq.read_table(path, columns=[p.name]).to_pandas() for path in (reference, current)]
    given = {p.name: kinds[p.name]} if kinds and p.name in kinds else {}
    return detect_drift(frames[0], frames[1], columns=None if skip_ids else [p.name],
                        method=method, threshold=threshold, kinds=given, workers=1)  # fmt: skip


__all__ = [
    "BATCH_ROWS",
    "ENGINES",
    "PARQUET_SUFFIXES",
    "ColumnPlan",
    "plan_columns",
    "scan_drift",
    "summarize_batch",
]
