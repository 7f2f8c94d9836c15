"""`mloop batch-predict --engine ray`: the same scoring on Ray Data, across a cluster if needed.

    ray.data.read_parquet / read_csv  ->  map_batches(_Scorer, concurrency=N)  ->  parts

`_Scorer` is an actor class: each actor loads the model once and scores many batches with the
same validation as the local engine (`mloop.model.table.check_chunk`), so rejects carry the
same reasons.
The driver streams the scored batches back and writes them with the local engine's parts and
rejects files. Rows are not numbered on Ray (blocks carry no global row index): rejects name
the file, the id (when there is one) and the reason.

Local by default (`ray.init(num_cpus=...)`, no dashboard). On a cluster, set `RAY_ADDRESS`
(or pass `--ray-address ray://head:10001`) and make the model reachable from the workers
(an MLflow tracking server or shared artifact store, `MLOOP_TRACKING_URI`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mloop.errors import ValidationError, require
from mloop.jobs.batch import (
    BatchSummary,
    Progress,
    id_column_for,
    output_columns,
    score_table,
)
from mloop.jobs.output import BatchOutput
from mloop.jobs.sources import column_names, estimate_rows, list_inputs
from mloop.model.table import missing_columns
from mloop.registry.resolve import load_model
from mloop.settings import Settings

REASON = "_mloop_reason"
PATH = "path"


class _Scorer:
    """A Ray actor: loads the model once, then scores pandas batches."""

    def __init__(self, model_uri: str, settings: dict[str, Any], id_column: str | None) -> None:
        self.model = load_model(model_uri, settings_from_payload(settings))
        self.id_column = id_column

    def __call__(self, batch: Any) -> Any:

        table = pa.Table.from_pandas(batch, preserve_index=False)
        predictions, rejects, good = score_table(self.model, table, self.id_column)
        out = predictions.to_pandas()
        out[REASON] = None
        out["file"] = batch[PATH].to_numpy()[good] if PATH in batch else None
        if rejects is None:
            return out
        bad = rejects.to_pandas()
        bad["file"] = batch[PATH].to_numpy()[~good] if PATH in batch else None
        bad = bad.rename(columns={"reason": REASON})
        return pd.concat([out, bad], ignore_index=True)


def settings_payload(settings: Settings) -> dict[str, Any]:
    """`settings` as the keyword arguments an actor rebuilds them from, secrets intact.

    `model_dump(mode="json")` would mask every SecretStr as `**********` (the actor would then
    reach MLflow or the database with the wrong credentials); the python-mode dump keeps the
    SecretStr objects, which pickle with their value and still print masked.
    """
    return settings.model_dump()


def settings_from_payload(payload: dict[str, Any]) -> Settings:
    """The Settings an actor uses, from `settings_payload` (after Ray's pickling)."""
    return Settings(**payload)


def ray_batch_predict(
    model_ref: str,
    input_path: str | Path,
    output: str | Path,
    *,
    settings: Settings,
    chunk_rows: int | None = None,
    id_column: str | None = None,
    restart: bool = False,
    concurrency: int = 2,
    address: str | None = None,
    progress: Progress | None = None,
) -> BatchSummary:
    """Score INPUT into OUTPUT on Ray Data; one part per streamed batch."""
    ray = require("ray", "ray")
    require("ray.data", "ray")
    started = time.perf_counter()
    chunk_rows = chunk_rows or settings.batch_chunk_rows
    files = list_inputs(input_path)
    model = load_model(model_ref, settings)
    features = model.schema.names
    headers = {path: column_names(path) for path in files}
    for path, columns in headers.items():
        try:
            missing_columns(model.schema, columns)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc.message}", hint=exc.hint) from exc
    id_name = id_column_for(headers[files[0]], features, id_column)
    csvs = [str(p) for p in files if p.suffix.lower() == ".csv"]
    parquets = [str(p) for p in files if p.suffix.lower() != ".csv"]
    if csvs and parquets:
        raise ValidationError(
            "the Ray engine reads one format per run; this input mixes CSV and Parquet",
            hint="split the folder, or use --engine local",
        )
    identity = {
        "model_uri": model.uri,
        "engine": "ray",
        "inputs": [str(p.resolve()) for p in files],
        "columns": output_columns(id_name),
    }
    out = BatchOutput(output, identity, restart=restart)
    out.done = {}  # Ray streams batches in no fixed order: an unfinished run starts over
    expected = sum(estimate_rows(p) for p in files)
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            options["address"] = address
        else:
            # one CPU per scoring actor plus one for reading, or the readers starve
            options["num_cpus"] = max(concurrency + 1, os.cpu_count() or 1)
        ray.init(**options)
    wanted = [*features, *([id_name] if id_name else [])]
    blocks = max(concurrency, -(-expected // chunk_rows))  # enough blocks to feed every actor
    if csvs:
        types = {f.name: pa.string() for f in model.schema.features}
        dataset = ray.data.read_csv(
            csvs,
            include_paths=True,
            override_num_blocks=blocks,
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    else:
        dataset = ray.data.read_parquet(
            parquets, include_paths=True, override_num_blocks=blocks
        ).select_columns([*wanted, PATH])
    settings_dict = settings_payload(settings)
    scored = dataset.map_batches(
        _Scorer,
        fn_constructor_kwargs={
            "model_uri": model.uri,
            "settings": settings_dict,
            "id_column": id_name,
        },
        batch_size=chunk_rows,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
    )
    integer_labels = model.classes is not None and np.asarray(model.classes).dtype.kind in "iu"
    counts = {"rows": 0, "scored": 0, "rejected": 0}
    order: list[str] = []
    for index, batch in enumerate(scored.iter_batches(batch_format="pandas", batch_size=None)):
        key = f"00000:{index:06d}"
        order.append(key)
        reasons = batch[REASON]
        bad = reasons.notna().to_numpy()
        good = batch.loc[~bad, output_columns(id_name)]
        if integer_labels:  # rejected rows (NaN predictions) made the column float
            good = good.astype({"prediction": np.int64})
        predictions = pa.Table.from_pandas(good, preserve_index=False)
        rejects = None
        if bad.any():
            rejected = batch.loc[bad]
            data = {"file": rejected["file"].astype("str"), "row": np.full(bad.sum(), None)}
            if id_name:
                data[id_name] = rejected[id_name].astype("str")
            data["reason"] = rejected[REASON].astype("str")
            for name in features:
                data[name] = rejected[name].astype("str")
            rejects = pa.table(
                {
                    k: pa.array(
                        list(v), type=pa.int64() if k == "row" else pa.string(), from_pandas=True
                    )
                    for k, v in data.items()
                }
            )
        out.write(key, predictions, rejects)
        counts["rows"] += len(batch)
        counts["scored"] += predictions.num_rows
        counts["rejected"] += int(bad.sum())
        if progress is not None:
            progress(counts["rows"], max(expected, counts["rows"]))
    final, rejects_path = out.finish(order)
    seconds = time.perf_counter() - started
    return BatchSummary(
        model=model.name,
        model_version=model.version,
        engine="ray",
        files=len(files),
        chunks=len(order),
        chunks_skipped=0,
        rows=counts["rows"],
        scored=counts["scored"],
        rejected=counts["rejected"],
        seconds=round(seconds, 3),
        output=str(final),
        rejects=str(rejects_path) if rejects_path else None,
        rows_per_second=round(counts["rows"] / seconds, 1) if seconds else 0.0,
        extra={"concurrency": concurrency},
    )
