"""The `predict` job: score the rows of a `POST /predict/async` request in chunks.

Rows were validated when the job was submitted; they are validated again here (the model may
have changed) chunk by chunk, so a job reports progress and heartbeats between chunks.
"""

from __future__ import annotations

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
            {"prediction": label, "probability": p, "prediction_id": str(uuid.uuid4())}
            for label, p in zip(labels, confidence, strict=True)
        ],
        "total_count": total,
        "model_name": model.name,
        "model_version": model.version,
        "total_latency_ms": round(elapsed * 1000, 3),
    }
