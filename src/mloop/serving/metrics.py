"""Prometheus metrics of one server app, in their own registry (no global state between apps).

With several worker processes set `PROMETHEUS_MULTIPROC_DIR`: the metrics then write to shared
files and `render()` aggregates every worker through `MultiProcessCollector`. Either way the
body ends with each worker's `process_*` metrics (a `pid` label) and `mloop_build_info`
(`serving.process_metrics`).

Per-request counts and observations made on the event loop (`count`, `observe`) are folded:
kept in plain dicts and written once per event-loop iteration, after every request the
iteration answered (one batch's answers resume together). In multiprocess mode each value
written is a locked write to the worker's file; folded, a batch of 20 single-row requests
costs one counter write and, per histogram, one write per bucket hit plus one for the sum,
instead of 7 writes per request. Every request is still observed: the buckets, counts and
sums are the same (a sum may differ in its last bits: it is added in another order).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from mloop.errors import DeadlineExceededError, UserError
from mloop.serving.process_metrics import BuildInfoCollector, WorkerProcessCollector, worker_pids

# Model calls take milliseconds; the buckets resolve 1 ms .. 10 s.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

SUCCESS = "success"
ERROR = "error"
INVALID = "invalid"
TIMEOUT = "timeout"


def refusal_status(exc: BaseException) -> str:
    """Status label of a request refused before the model: bad input, or no model to ask."""
    return INVALID if isinstance(exc, UserError) else ERROR


def failure_status(exc: BaseException) -> str:
    """Status label of a model call that failed: it missed its deadline, or it broke."""
    return TIMEOUT if isinstance(exc, DeadlineExceededError) else ERROR


NO_MODEL = "none"  # the version label while no model is loaded

# The `variant` label: `deployment/variant` for deployment traffic, `default` for the served
# model. Bounded: past MAX_VARIANTS distinct values further ones are counted as `other`.
DEFAULT_VARIANT = "default"
OTHER_VARIANT = "other"
MAX_VARIANTS = 32


class ServingMetrics:
    """Counters and histograms for predictions; `render()` gives the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._counted: dict[tuple[str, str, str], Any] = {}  # label children, cached
        self._observed: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._variants: set[str] = set()
        # Folded on the event loop, written by `flush` (scheduled once per loop iteration).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counts: dict[Any, float] = {}  # counter child -> amount
        self._values: dict[Any, list[float]] = {}  # histogram child -> observations
        self._flushing = False
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions answered, per row, by model version, outcome and variant.",
            ["model_version", "status", "variant"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_prediction_latency_seconds",
            "Time to answer one prediction request (validation + model call).",
            ["model_version", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.confidence = Histogram(
            "model_prediction_confidence",
            "Probability of the predicted class, per row.",
            ["model_version"],
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.shadow = Counter(
            "mloop_shadow_predictions_total",
            "Mirrored (shadow) predictions per deployment: the candidate agreed or disagreed "
            "with the answer given, failed, or was skipped because enough were in flight.",
            ["deployment", "result"],
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "mloop_feature_out_of_range_total",
            "Rows accepted although a feature is outside its declared range or allowed values "
            "(a features.yaml rule with policy count), per feature.",
            ["feature"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "mloop_prediction_log_dropped_total",
            "Prediction log rows dropped because the log queue was full or the write failed.",
            registry=self.registry,
        )
        self.log_write_errors = Counter(
            "mloop_prediction_log_write_errors_total",
            "Failed prediction log writes (database away, disk full); each is retried.",
            registry=self.registry,
        )

        self.batches = Counter(
            "mloop_batches_total",
            "Model calls made by the adaptive batcher.",
            ["model_version"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "mloop_batch_size_rows",
            "Rows per model call (requests coalesced by the adaptive batcher).",
            ["model_version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "mloop_batch_requests",
            "Requests coalesced into one model call.",
            ["model_version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "mloop_model_call_seconds",
            "Duration of one model call (a whole batch), in its worker thread.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "mloop_batch_queue_wait_seconds",
            "Time a request waited in the batcher queue before its model call started.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "mloop_batch_queue_rows",
            "Rows waiting in the batcher queue (summed over live workers).",
            ["model_version"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.batch_retries = Counter(
            "mloop_batch_split_retries_total",
            "Failed model calls retried request by request so one bad request fails alone.",
            ["model_version"],
            registry=self.registry,
        )
        self.cache = Counter(
            "mloop_prediction_cache_total",
            "Prediction cache lookups per row: hit or miss; error when the cache is down, "
            "bypassed while it is not asked (a few seconds after an error).",
            ["model_version", "result"],
            registry=self.registry,
        )
        # Hot swaps (serving.runtime): a followed alias moved to a new version.
        self.model_swaps = Counter(
            "mloop_model_swaps_total",
            "Hot swaps to a new model version: success, or failed (load or warm-up failed; "
            "the old version kept serving).",
            ["result"],
            registry=self.registry,
        )
        self.model_served = Gauge(
            "mloop_model_served",
            "1 for the model version each served reference answers with now (current only).",
            ["reference", "model_version"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        for result in ("success", "failed"):  # both series from the start (rate() needs them)
            self.model_swaps.labels(result=result)
        # Not in a multiprocess file: read at scrape time, for every live worker.
        self.process = CollectorRegistry()
        self.process.register(WorkerProcessCollector(self._worker_pids))
        self.process.register(BuildInfoCollector())

    def variant_label(self, deployment: str, variant: str) -> str:
        """The `variant` label of a deployment's variant: `deployment/variant`, or `other`."""
        label = f"{deployment}/{variant}"
        if label in self._variants:
            return label
        if len(self._variants) >= MAX_VARIANTS:
            return OTHER_VARIANT
        self._variants.add(label)
        return label

    def count(
        self, version: str, status: str, rows: int = 1, variant: str = DEFAULT_VARIANT
    ) -> None:
        key = (version, status, variant)
        child = self._counted.get(key)
        if child is None:  # labels() takes a lock and builds a tuple: once per label set
            child = self._counted[key] = self.predictions.labels(
                model_version=version, status=status, variant=variant
            )
        if self._folding():
            counts = self._counts
            counts[child] = counts.get(child, 0) + rows
        else:
            child.inc(rows)

    def count_out_of_range(self, features: dict[str, int]) -> None:
        """Count rows accepted outside their feature contract (`contract_check.Flags`)."""
        for feature, rows in features.items():
            self.out_of_range.labels(feature=feature).inc(rows)

    def observe(
        self,
        version: str,
        seconds: float,
        confidences: list[float] | None,
        variant: str = DEFAULT_VARIANT,
    ) -> None:
        """Record one answered request: its latency and each row's confidence."""
        pair = self._observed.get((version, variant))
        if pair is None:
            pair = self._observed[(version, variant)] = (
                self.latency.labels(model_version=version, variant=variant),
                self.confidence.labels(model_version=version),
            )
        if self._folding():
            values = self._values
            latency = values.get(pair[0])
            if latency is None:
                values[pair[0]] = [seconds]
            else:
                latency.append(seconds)
            if confidences:
                rows = values.get(pair[1])
                if rows is None:
                    values[pair[1]] = list(confidences)
                else:
                    rows.extend(confidences)
            return
        pair[0].observe(seconds)
        if confidences:
            observe_many(pair[1], confidences)

    def _folding(self) -> bool:
        """True on this app's event loop (a flush is then scheduled): fold, don't write.

        Elsewhere (another thread, another loop, no loop) values are written at once.
        """
        loop = asyncio._get_running_loop()
        if loop is None:
            return False
        if loop is not self._loop:
            if self._loop is not None and not self._loop.is_closed():
                return False  # a second loop in this process: it writes directly
            self._loop, self._flushing = loop, False
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Write what `count` and `observe` folded since the last flush."""
        self._flushing = False
        counts, values = self._counts, self._values
        if counts:
            self._counts = {}
            for child, amount in counts.items():
                child.inc(amount)
        if values:
            self._values = {}
            for child, observed in values.items():
                observe_many(child, observed)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app (of every worker in multiprocess mode)."""
        loop = self._loop
        if loop is None or loop.is_closed() or asyncio._get_running_loop() is loop:
            self.flush()  # (on another thread the loop's own flush comes within an iteration)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry) + generate_latest(self.process)
        return generate_latest(self.registry) + generate_latest(self.process)

    @staticmethod
    def _worker_pids() -> list[int]:
        return worker_pids(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def observe_many(histogram: Any, values: Iterable[float]) -> None:
    """`histogram.observe(v)` for each value, with one write per bucket hit and one for the sum.

    A labelled Histogram child keeps its bounds, bucket values and sum as `_upper_bounds`,
    `_buckets` and `_sum` (prometheus_client 0.8 to today); a child without them (another
    version, another metric type) is observed value by value.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    hits = [0] * len(bounds)
    added = 0.0
    for value in values:
        added += value
        if value == value:  # NaN is in no bucket (`value <= bound` is false for every bound)
            hits[bisect_left(bounds, value)] += 1  # the first bound >= value, as observe()
    total.inc(added)
    for index, count in enumerate(hits):
        if count:
            buckets[index].inc(count)
