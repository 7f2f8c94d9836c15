"""Adaptive batching: concurrent requests for one model share one model call.

A model call costs about the same for 1 row as for 64, so the server queues validated requests
per model and hands them to the model together. When the model is idle a request runs at once
(no added latency at low load). While `max_in_flight` calls are running, requests accumulate;
the next batch leaves as soon as a call finishes, or earlier (as an extra call) once it holds
`max_batch_size` rows or its oldest request has waited `max_wait_ms`.

The event loop only moves futures; building the batch's DataFrame and calling the model run in
a worker thread. If a batch call fails, each request in it is retried alone, so a bad row fails
only its own request. A request whose deadline passes while queued is dropped from its batch.
Every answered request goes to `publish` (prediction log, drift listeners) with the batch frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mloop.errors import DeadlineExceededError, MloopError
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.serving.loader import LoadedModel
from mloop.serving.metrics import ServingMetrics
from mloop.serving.schema import Columns

log = logging.getLogger("mloop.serving")


class ModelCallError(MloopError):
    """The model itself raised on a request's rows (logged on the server, 500 to the client)."""

    def to_dict(self) -> dict[str, str]:
        return {"error": "InternalError", "detail": self.message}


@dataclass
class Answer:
    """What the model said about one request's rows."""

    labels: list[Any]
    probabilities: np.ndarray | None  # rows x classes
    ids: list[str]
    cached: int = 0  # rows answered from the prediction cache
    # Probability of the predicted class per row; the batcher fills it in the model thread.
    confidences: list[float] | None = None

    @property
    def confidence(self) -> list[float] | None:
        """Probability of the predicted class, per row (computed once)."""
        if self.confidences is None and self.probabilities is not None:
            self.confidences = self.probabilities.max(axis=1).tolist()
        return self.confidences


@dataclass(eq=False)
class _Request:
    part: Columns
    rows: Sequence[Any]
    future: asyncio.Future
    enqueued: float
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Outcome:
    """A batch's result in the worker thread: per request an Answer or an exception."""

    results: list[Answer | BaseException]
    frame: Any = None
    seconds: float = 0.0
    retried: bool = False
    frames: list[Any] = field(default_factory=list)  # per request, after a split retry


class Batcher:
    """The queue and model calls of one loaded model in one server process."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_in_flight: int,
        metrics: ServingMetrics,
        publish: Callable[[PredictionBatch, Any], None],
    ) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.publish = publish
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        # Extra threads for calls that leave early (full or waited max_wait_ms) while busy.
        self._executor = ThreadPoolExecutor(
            max_workers=max_in_flight + 2, thread_name_prefix=f"mloop-model-{model.version}"
        )
        version = model.version
        self._depth = metrics.queue_depth.labels(model_version=version)
        self._batches = metrics.batches.labels(model_version=version)
        self._batch_rows = metrics.batch_rows.labels(model_version=version)
        self._batch_requests = metrics.batch_requests.labels(model_version=version)
        self._model_seconds = metrics.model_seconds.labels(model_version=version)
        self._queue_wait = metrics.queue_wait.labels(model_version=version)
        self._retries = metrics.batch_retries.labels(model_version=version)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def idle(self) -> bool:
        return not self._queue and self._in_flight == 0

    async def submit(
        self, part: Columns, rows: Sequence[Any], timeout: float | None = None
    ) -> Answer:
        """Queue one validated request and wait for its answer.

        Raises DeadlineExceededError after `timeout` seconds, ModelCallError when the model
        fails on this request's rows.
        """
        loop = asyncio.get_running_loop()
        request = _Request(part, rows, loop.create_future(), time.perf_counter())
        if timeout is not None:
            request.timer = loop.call_later(timeout, _expire, request.future, timeout)
        self._queue.append(request)
        self._queued_rows += part.rows
        self._pump()
        try:
            return await request.future
        finally:
            if request.timer is not None:
                request.timer.cancel()

    def close(self) -> None:
        """Stop the model threads (calls in progress finish; nothing new starts)."""
        if self._timer is not None:
            self._timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the event-loop side -------------------------------------------------------------------

    def _pump(self) -> None:
        """Start every batch that may start now; otherwise wake up when the oldest is due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._pump_queue()
        finally:  # one gauge update per pump, not two per request
            self._depth.set(self._queued_rows)

    def _pump_queue(self) -> None:
        while self._queue:
            if self._queue[0].future.done():  # expired or cancelled while queued
                self._forget(self._queue.popleft())
                continue
            if self._in_flight >= self.max_in_flight:
                waited = time.perf_counter() - self._queue[0].enqueued
                if self._queued_rows < self.max_batch_size and waited < self.max_wait:
                    self._timer = asyncio.get_running_loop().call_later(
                        self.max_wait - waited, self._pump
                    )
                    return
            batch = self._take()
            if batch:
                self._start(batch)

    def _take(self) -> list[_Request]:
        """Pop requests up to max_batch_size rows (always at least one request)."""
        batch: list[_Request] = []
        rows = 0
        while self._queue:
            request = self._queue[0]
            if request.future.done():
                self._forget(self._queue.popleft())
                continue
            if batch and rows + request.part.rows > self.max_batch_size:
                break
            self._forget(self._queue.popleft())
            batch.append(request)
            rows += request.part.rows
        return batch

    def _forget(self, request: _Request) -> None:
        self._queued_rows -= request.part.rows

    def _start(self, batch: list[_Request]) -> None:
        self._in_flight += 1
        now = time.perf_counter()
        for request in batch:
            self._queue_wait.observe(now - request.enqueued)
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self._run, batch)
        call.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(self, batch: list[_Request], done: asyncio.Future) -> None:
        self._in_flight -= 1
        try:
            outcome: _Outcome = done.result()
        except BaseException as exc:  # the executor itself failed (shut down)
            outcome = _Outcome(results=[_as_error(exc)] * len(batch))
        self._batches.inc()
        self._batch_rows.observe(sum(r.part.rows for r in batch))
        self._batch_requests.observe(len(batch))
        self._model_seconds.observe(outcome.seconds)
        if outcome.retried:
            self._retries.inc()
        answered: list[int] = []
        for i, (request, result) in enumerate(zip(batch, outcome.results, strict=True)):
            if request.future.done():
                continue  # expired while the model ran: not answered, not logged
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)
                answered.append(i)
        if answered:
            self._publish(batch, outcome, answered)
        self._pump()

    def _publish(self, batch: list[_Request], outcome: _Outcome, answered: list[int]) -> None:
        model = self.model
        chosen = [batch[i] for i in answered]
        results = [outcome.results[i] for i in answered]
        if outcome.retried or outcome.frame is None:
            import pandas as pd

            frames = [outcome.frames[i] for i in answered]
            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        elif len(answered) == len(batch):
            frame = outcome.frame
        else:
            mask = np.concatenate(
                [np.full(r.part.rows, i in answered) for i, r in enumerate(batch)]
            )
            frame = outcome.frame.iloc[mask].reset_index(drop=True)
        oldest = min(r.enqueued for r in chosen)
        confidence: list[float | None] = []
        for answer in results:
            assert isinstance(answer, Answer)
            confidence += answer.confidence or [None] * len(answer.ids)
        self.publish(
            PredictionBatch(
                model_name=model.name,
                model_version=model.version,
                created_at=datetime.now(UTC),
                ids=[i for a in results for i in a.ids],  # type: ignore[union-attr]
                rows=[row for r in chosen for row in r.rows],
                predictions=[label for a in results for label in a.labels],  # type: ignore[union-attr]
                probabilities=confidence,
                latency_ms=round((time.perf_counter() - oldest) * 1000, 3),
                columns=model.schema.names,
            ),
            frame,
        )

    # -- the worker-thread side ----------------------------------------------------------------

    def _run(self, batch: list[_Request]) -> _Outcome:
        """Build one frame, call the model once; on failure retry request by request."""
        schema = self.model.schema
        started = time.perf_counter()
        frame = None
        try:
            frame = schema.frame([r.part for r in batch])
            labels, probabilities = self.model.predict(frame)
        except Exception as exc:
            if len(batch) == 1:
                return _Outcome(
                    [self._failure(exc, batch[0])], frame, _since(started), False, [frame]
                )
            return self._split(batch, started)
        results: list[Answer | BaseException] = []
        label_list = labels.tolist()
        # Confidences for the whole batch in one numpy call, here rather than on the event loop.
        confidences = probabilities.max(axis=1).tolist() if probabilities is not None else None
        offset = 0
        for request in batch:
            n = request.part.rows
            results.append(
                Answer(
                    label_list[offset : offset + n],
                    probabilities[offset : offset + n] if probabilities is not None else None,
                    [str(uuid.uuid4()) for _ in range(n)],
                    confidences=(
                        confidences[offset : offset + n] if confidences is not None else None
                    ),
                )
            )
            offset += n
        return _Outcome(results, frame, _since(started))

    def _split(self, batch: list[_Request], started: float) -> _Outcome:
        results: list[Answer | BaseException] = []
        frames: list[Any] = []
        schema = self.model.schema
        for request in batch:
            frame = None
            try:
                frame = schema.frame([request.part])
                labels, probabilities = self.model.predict(frame)
            except Exception as exc:
                results.append(self._failure(exc, request))
            else:
                n = request.part.rows
                ids = [str(uuid.uuid4()) for _ in range(n)]
                results.append(Answer(labels.tolist(), probabilities, ids))
            frames.append(frame)
        return _Outcome(results, None, _since(started), True, frames)

    def _failure(self, exc: Exception, request: _Request) -> ModelCallError:
        model = self.model
        log.error(
            "model %s/%s failed on %d rows: %s: %s",
            model.name,
            model.version,
            request.part.rows,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return ModelCallError(
            f"the model failed on this input ({type(exc).__name__}); see the server log"
        )


def _expire(future: asyncio.Future, timeout: float) -> None:
    if not future.done():
        future.set_exception(
            DeadlineExceededError(
                f"no answer within the deadline of {timeout * 1000:g} ms",
                hint="retry later, send fewer rows, or raise X-Request-Timeout-Ms",
            )
        )


def _as_error(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, MloopError) else ModelCallError(f"model call failed: {exc}")


def _since(started: float) -> float:
    return time.perf_counter() - started
