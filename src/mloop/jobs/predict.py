"""The `predict` job: score the rows of a `POST /predict/async` request in chunks.

Rows were validated when the job was submitted; they are validated again here (the model may
have changed) chunk by chunk, so a job reports progress and heartbeats between chunks.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import numpy as np

from mloop.errors import ValidationError
from mloop.jobs.context import JobContext
from mloop.jobs.queue import Job

KIND = "predict"


def run_predict(job: Job, context: JobContext) -> dict[str, Any]:
    """Predict every row of the job; the result has the `/predict/batch` answer's shape."""
    if not job.model_uri:
        raise ValidationError(f"job {job.id} names no model")
    instances = job.payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise ValidationError(f"job {job.id} has no instances to score")
    model = context.models.get(job.model_uri)
    chunk_rows = context.settings.jobs_chunk_rows
    delay = context.settings.jobs_test_delay_seconds
    started = time.perf_counter()
    labels: list[Any] = []
    confidence: list[float | None] = []
    total = len(instances)
    for start in range(0, total, chunk_rows):
        context.check()
        rows = instances[start : start + chunk_rows]
        frame = model.schema.to_frame(rows, row_offset=start)
        chunk_labels, probabilities = model.predict(frame)
        labels.extend(np.asarray(chunk_labels).tolist())
        if probabilities is not None:
            confidence.extend(probabilities.max(axis=1).tolist())
        else:
            confidence.extend([None] * len(rows))
        if delay:
            time.sleep(delay)
        context.report((start + len(rows)) / total)
    elapsed = time.perf_counter() - started
    return {
        "predictions": [
            {"prediction": label, "probability": p, "prediction_id": pid}
            for label, p, pid in zip(labels, confidence, prediction_ids(total), strict=True)
        ],
        "total_count": total,
        "model_name": model.name,
        "model_version": model.version,
        "total_latency_ms": round(elapsed * 1000, 3),
    }


def prediction_ids(n: int) -> list[str]:
    """`n` time-ordered UUIDv7 ids (RFC 9562), as `/predict` answers (`serving.batcher.new_ids`,
    a layer above): a millisecond prefix, then 74 random bits."""
    stamp = (time.time_ns() // 1_000_000) << 80
    out = []
    for _ in range(n):
        random = int.from_bytes(os.urandom(10))
        rand_a, rand_b = (random >> 62) & 0xFFF, random & ((1 << 62) - 1)
        value = stamp | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
        out.append(str(uuid.UUID(int=value)))
    return out
