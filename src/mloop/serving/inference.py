"""The one path every prediction route takes: deadline, prediction cache, adaptive batcher.

Routes parse their own protocol (mloop JSON, MLflow scoring, Open Inference Protocol, NDJSON),
validate rows into `Columns`, and call `infer`. Cache hits are answered and published here;
misses go through the model's batcher, which publishes what the model answered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.requests import Request

from mloop.errors import MloopError, ValidationError
from mloop.model.loader import LoadedModel
from mloop.model.schema import Columns
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.serving.batcher import Answer, new_ids
from mloop.serving.body import raw_header
from mloop.serving.cache import CacheUnavailable, cache_key
from mloop.serving.metrics import SUCCESS, failure_status, refusal_status
from mloop.serving.state import ServingState

TIMEOUT_HEADER = b"x-request-timeout-ms"


def request_timeout(request: Request, state: ServingState) -> float | None:
    """The deadline in seconds: the setting, shortened by an `X-Request-Timeout-Ms` header."""
    limit = state.settings.request_timeout_ms
    header = raw_header(request, TIMEOUT_HEADER)
    if header is not None:
        try:
            asked = float(header)
        except ValueError:
            asked = -1.0
        if not asked > 0 or asked != asked or asked == float("inf"):
            raise ValidationError(
                f"header X-Request-Timeout-Ms must be a positive number of milliseconds, "
                f"got {header!r}"
            )
        limit = min(limit, asked) if limit > 0 else asked
    return limit / 1000.0 if limit > 0 else None


def count_refused(state: ServingState, exc: MloopError, rows: int = 1) -> None:
    """Count rows refused before the model: invalid input, or no model to ask."""
    state.metrics.count(state.version_label, refusal_status(exc), rows)


async def infer_counted(
    state: ServingState,
    model: LoadedModel,
    part: Columns,
    rows: Sequence[Any],
    *,
    timeout: float | None,
) -> Answer:
    """`infer`, with the rows counted as answered, or by why they failed (then re-raised)."""
    try:
        answer = await infer(state, model, part, rows, timeout=timeout)
    except MloopError as exc:
        state.metrics.count(model.version, failure_status(exc), part.rows)
        raise
    state.metrics.count(model.version, SUCCESS, part.rows)
    return answer


async def infer(
    state: ServingState,
    model: LoadedModel,
    part: Columns,
    rows: Sequence[Any],
    *,
    timeout: float | None,
) -> Answer:
    """Answer validated rows: from the cache where it has them, from the model otherwise.

    Raises DeadlineExceededError (504) or ModelCallError (500) from the batcher. Rows accepted
    outside the model's feature contract (`part.flags`) are counted here, once per request.
    """
    if part.flags is not None:
        state.metrics.count_out_of_range(part.flags.features)
    cache = state.cache
    if cache is None:
        return await state.batcher(model).submit(part, rows, timeout)
    if not cache.available:  # down a moment ago: not asked again for a few seconds
        state.metrics.cache.labels(model_version=model.version, result="bypassed").inc(len(rows))
        return await state.batcher(model).submit(part, rows, timeout)
    started = time.perf_counter()
    schema = model.schema
    keys = [cache_key(model.name, model.version, schema.row_as_dict(row)) for row in rows]
    counter = state.metrics.cache
    try:
        found = await cache.get_many(keys)
    except CacheUnavailable:
        counter.labels(model_version=model.version, result="error").inc(len(keys))
        return await state.batcher(model).submit(part, rows, timeout)
    misses = [i for i, entry in enumerate(found) if entry is None]
    hits = len(keys) - len(misses)
    if hits:
        counter.labels(model_version=model.version, result="hit").inc(hits)
    if misses:
        counter.labels(model_version=model.version, result="miss").inc(len(misses))
    if not misses:
        answer = _from_cache(found)
        _publish_hits(state, model, part, rows, list(range(len(rows))), answer, started)
        return answer
    if len(misses) == len(rows):
        fresh = await state.batcher(model).submit(part, rows, timeout)
        await cache.set_many(_entries(keys, fresh))
        return fresh
    hit_index = [i for i, entry in enumerate(found) if entry is not None]
    fresh = await state.batcher(model).submit(part.take(misses), [rows[i] for i in misses], timeout)
    await cache.set_many(_entries([keys[i] for i in misses], fresh))
    cached = _from_cache([found[i] for i in hit_index])
    _publish_hits(state, model, part, rows, hit_index, cached, started)
    return _merge(len(rows), misses, fresh, hit_index, cached)


def _entries(keys: Sequence[str], answer: Answer) -> list[tuple[str, Any]]:
    probabilities = answer.probabilities.tolist() if answer.probabilities is not None else None
    return [
        (key, (label, probabilities[i] if probabilities is not None else None))
        for i, (key, label) in enumerate(zip(keys, answer.labels, strict=True))
    ]


def _from_cache(entries: Sequence[Any]) -> Answer:
    labels = [entry[0] for entry in entries]
    if entries and entries[0][1] is not None:
        probabilities = np.asarray([entry[1] for entry in entries], dtype=np.float64)
    else:
        probabilities = None
    ids = new_ids(len(entries))  # time-ordered, like the model's answers
    return Answer(labels, probabilities, ids, cached=len(entries))


def _merge(n: int, misses: list[int], fresh: Answer, hits: list[int], cached: Answer) -> Answer:
    """Put fresh and cached answers back in the request's row order."""
    labels: list[Any] = [None] * n
    ids: list[str] = [""] * n
    probabilities = None
    if fresh.probabilities is not None and cached.probabilities is not None:
        probabilities = np.empty((n, fresh.probabilities.shape[1]), dtype=np.float64)
        probabilities[misses] = fresh.probabilities
        probabilities[hits] = cached.probabilities
    for source, index in ((fresh, misses), (cached, hits)):
        for j, i in enumerate(index):
            labels[i] = source.labels[j]
            ids[i] = source.ids[j]
    return Answer(labels, probabilities, ids, cached=len(hits))


def _publish_hits(state, model, part, rows, index, answer: Answer, started: float) -> None:
    """Cached answers are answered predictions too: log them and show them to listeners."""
    subset = part if len(index) == part.rows else part.take(index)
    state.publish(
        PredictionBatch(
            model_name=model.name,
            model_version=model.version,
            created_at=datetime.now(UTC),
            ids=answer.ids,
            rows=[rows[i] for i in index],
            predictions=answer.labels,
            probabilities=answer.confidence or [None] * len(index),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            columns=model.schema.names,
            out_of_range=subset.flags.reasons if subset.flags is not None else None,
        ),
        model.schema.frame([subset]),
    )
