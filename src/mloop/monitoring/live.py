"""Live drift in the server: every answered batch is counted on the reference bins.

`LiveDriftMonitor` is a prediction listener (`state.listeners`): on the response path it only
puts `(batch, frame)` on a bounded queue. Its thread counts each batch with one vectorised
`ReferenceProfile.counts` call into a `SlidingWindow` per model version, bumps the
`missing_features_total` / `outliers_total` counters, and every `interval` seconds compares
each window with its profile (`mloop.stats.binned.compare`, with the monitor's `method` and
`threshold`) and sets `feature_drift_score{feature_name}` and `prediction_drift_score`.
Memory is bounded: a window is at most `buckets + 1` sets of counts whatever the traffic.
A full queue drops batches (counted) rather than slow answers.

The queue is a `mloop.background.BackgroundQueue`: the listener's share of a request is one
deque append (no lock, no wake-up). Under load the thread lingers `linger` seconds (1 s by
default) after the first queued batch and counts all the batches queued by then together
(up to `coalesce_rows` rows per counting call, one frame concatenation per model version), so
the per-call cost is paid about once a second rather than per request (measured: 0.05 s gave
73%/64% of unmonitored throughput, 1 s gave 83%/82%; see docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge

from mloop.background import BackgroundQueue
from mloop.errors import ValidationError
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.stats.binned import compare
from mloop.stats.counts import WindowCounts
from mloop.stats.profile import ReferenceProfile
from mloop.stats.verdict import (
    AUTO,
    ON_SAMPLES,
    P_VALUES,
    DriftResult,
    FeatureDrift,
    normalize_method,
)

log = logging.getLogger("mloop.monitoring")

ProfileSource = Callable[[str, str], "tuple[ReferenceProfile | None, list[Any] | None]"]


@dataclass
class _Bucket:
    started: float
    counts: WindowCounts


class SlidingWindow:
    """The latest rows, by count (`max_rows`) and by age (`max_seconds`), as mergeable counts.

    Rows arrive in buckets of about a tenth of the window (by rows or by time); whole buckets
    expire, so the window holds between `max_rows` and `max_rows` plus one bucket of rows, and
    nothing older than `max_seconds` plus one bucket's span.
    """

    def __init__(
        self, profile: ReferenceProfile, max_rows: int, max_seconds: float, buckets: int = 10
    ) -> None:
        self.profile = profile
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._bucket_rows = max(max_rows // buckets, 1)
        self._bucket_seconds = max_seconds / buckets
        self._buckets: deque[_Bucket] = deque()
        self.total_rows = 0
        self.seen_rows = 0

    def add(self, counts: WindowCounts, now: float) -> None:
        last = self._buckets[-1] if self._buckets else None
        if (
            last is None
            or last.counts.rows >= self._bucket_rows
            or now - last.started >= self._bucket_seconds
        ):
            last = _Bucket(now, counts)
            self._buckets.append(last)
        else:
            last.counts = last.counts + counts
        self.total_rows += counts.rows
        self.seen_rows += counts.rows
        self.expire(now)

    def expire(self, now: float) -> None:
        """Drop buckets that are too old, then the oldest while the rest fill the window."""
        while self._buckets and now - self._buckets[0].started > self.max_seconds:
            self.total_rows -= self._buckets.popleft().counts.rows
        while len(self._buckets) > 1 and self.total_rows - self._buckets[0].counts.rows >= (
            self.max_rows
        ):
            self.total_rows -= self._buckets.popleft().counts.rows

    def counts(self) -> WindowCounts:
        """The window's counts (the sum of its buckets)."""
        total = self.profile.empty_counts()
        for bucket in self._buckets:
            total = total + bucket.counts
        return total


@dataclass
class _Tracked:
    """One model version's window and what it needs to count batches."""

    name: str
    version: str
    window: SlidingWindow | None
    classes: list[Any] | None = None
    reason: str | None = None
    features: set[str] = field(default_factory=set)


def positive_scores(
    predictions: Any, confidence: Any, classes: list[Any] | None
) -> np.ndarray | None:
    """The score the reference profile binned: positive-class probability for binary models
    (from the predicted class and its probability), else the confidence itself."""
    conf = np.asarray(confidence, dtype=np.float64)  # None becomes NaN
    if np.isnan(conf).all():
        return None
    if classes is not None and len(classes) == 2:
        positive = np.asarray(predictions, dtype=object) == classes[1]
        return np.where(positive, conf, 1.0 - conf)
    return conf


class LiveDriftMonitor:
    """Counts every answered batch off the response path and exports live drift gauges."""

    def __init__(
        self,
        registry: CollectorRegistry,
        profile_source: ProfileSource,
        *,
        window_rows: int = 10_000,
        window_seconds: float = 3600.0,
        interval: float = 5.0,
        min_rows: int = 100,
        max_queue: int = 10_000,
        coalesce_rows: int = 5_000,
        linger: float = 1.0,
        method: str = AUTO,
        threshold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile_source = profile_source
        self.method = normalize_method(method)  # the statistic that decides, as in compare()
        if self.method in ON_SAMPLES:
            raise ValidationError(f"live drift runs on counts: {method} needs raw samples")
        self.threshold = threshold
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self.interval = interval
        self.min_rows = min_rows
        self.coalesce_rows = coalesce_rows
        self.linger = linger
        self.clock = clock
        self._queue: BackgroundQueue[tuple[PredictionBatch, Any]] = BackgroundQueue(
            "mloop-drift",
            self._handle,
            max_items=max_queue,
            batch=max_queue,  # the linger ends early only when the queue is full
            linger=linger,
            tick=self._tick,
            tick_seconds=interval,
            start=False,
        )
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._lock = threading.Lock()  # guards _tracked between the thread and report()
        self._last_report = 0.0
        self.feature_drift = Gauge(
            "feature_drift_score",
            "Live drift of each feature against the training profile: the deciding statistic "
            "(normalised Wasserstein, Jensen-Shannon, or 1 - p for a p-value test).",
            ["feature_name", "model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.prediction_drift = Gauge(
            "prediction_drift_score",
            "Live drift of the predicted labels (or values) against training.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.feature_threshold = Gauge(
            "feature_drift_threshold",
            "Score at which feature_drift_score means drift (alert: score >= threshold).",
            ["feature_name", "model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.prediction_threshold = Gauge(
            "prediction_drift_threshold",
            "Score at which prediction_drift_score means drift.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.drifted_share = Gauge(
            "dataset_drift_share",
            "Share of features whose live drift is over their threshold.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.window_rows_gauge = Gauge(
            "drift_window_rows",
            "Rows in the live drift window.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.skew = Gauge(
            "mloop_feature_skew",
            "Train/serve skew per feature: Jensen-Shannon distance between the training profile "
            "and the live window on the profile's bins (0 same, 1 disjoint).",
            ["model", "version", "feature"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.missing = Counter(
            "missing_features",
            "Rows answered with a missing value, per feature.",
            ["feature_name"],
            registry=registry,
        )
        self.outliers = Counter(
            "outliers",
            "Values outside the training range, or categories unseen in training, per feature.",
            ["feature_name"],
            registry=registry,
        )
        self.dropped = Counter(
            "mloop_drift_dropped_rows",
            "Rows not counted for live drift because the monitor's queue was full.",
            registry=registry,
        )

    # -- the response path -------------------------------------------------------------------

    def __call__(self, batch: PredictionBatch, frame: Any) -> None:
        """The listener: one non-blocking append."""
        if not self._queue.put((batch, frame)):
            self.dropped.inc(len(batch))

    # -- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._queue.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Count what is queued, then stop the thread (final: the monitor does not restart)."""
        self._queue.close(timeout)

    def flush(self) -> None:
        """Block until every queued batch is counted, then recompute the gauges."""
        self._queue.flush()
        self.report()

    def _handle(self, items: list[tuple[PredictionBatch, Any]]) -> None:
        """Count the batches, `coalesce_rows` rows at most per counting call."""
        try:
            chunk: list[tuple[PredictionBatch, Any]] = []
            rows = 0
            for item in items:
                if chunk and rows + len(item[0]) > self.coalesce_rows:
                    self._count(chunk)
                    chunk, rows = [], 0
                chunk.append(item)
                rows += len(item[0])
            if chunk:
                self._count(chunk)
        except Exception:  # monitoring must never take the server down
            log.exception("live drift monitor failed on %d batch(es)", len(items))
        self._tick()

    def _tick(self) -> None:
        if self.clock() - self._last_report >= self.interval:
            self.report()

    def _count(self, items: list[tuple[PredictionBatch, Any]]) -> None:
        """Count queued batches, grouped by model version, with one vectorised call per group."""
        groups: dict[tuple[str, str], list[tuple[PredictionBatch, Any]]] = {}
        for batch, frame in items:
            groups.setdefault((batch.model_name, batch.model_version), []).append((batch, frame))
        for (name, version), group in groups.items():
            tracked = self._track(name, version)
            if tracked.window is None:
                continue
            frames = [frame for _, frame in group]
            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            predictions = list(chain.from_iterable(batch.predictions for batch, _ in group))
            confidence = list(chain.from_iterable(batch.probabilities for batch, _ in group))
            scores = positive_scores(predictions, confidence, tracked.classes)
            profile = tracked.window.profile
            counts = profile.counts(frame, predictions=predictions, probabilities=scores)
            with self._lock:
                tracked.window.add(counts, self.clock())
            for feature_name, feature in counts.features.items():
                if feature.missing:
                    self.missing.labels(feature_name=feature_name).inc(feature.missing)
                if feature.outside:
                    self.outliers.labels(feature_name=feature_name).inc(feature.outside)

    def _track(self, name: str, version: str) -> _Tracked:
        key = (name, version)
        tracked = self._tracked.get(key)
        if tracked is None:
            try:
                profile, classes = self.profile_source(name, version)
                reason = None if profile else "the training run logged no reference profile"
            except Exception as exc:
                profile, classes, reason = None, None, f"cannot load the profile: {exc}"
                log.warning("no live drift for %s/%s: %s", name, version, reason)
            window = (
                SlidingWindow(profile, self.window_rows, self.window_seconds) if profile else None
            )
            features = set(profile.features) if profile else set()
            tracked = _Tracked(name, version, window, classes, reason, features)
            with self._lock:
                self._tracked[key] = tracked
        return tracked

    # -- reports -----------------------------------------------------------------------------

    def report(self, name: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        """Compare each tracked window with its profile, set the gauges, return the reports."""
        self._last_report = self.clock()
        out = []
        with self._lock:
            tracked = [
                t
                for t in self._tracked.values()
                if (name is None or t.name == name) and (version is None or t.version == version)
            ]
            windows = []
            for t in tracked:
                if t.window is not None:
                    t.window.expire(self.clock())
                windows.append((t, t.window.counts() if t.window is not None else None))
        for t, counts in windows:
            entry: dict[str, Any] = {"model_name": t.name, "model_version": t.version}
            if counts is None:
                entry.update(status="no_profile", reason=t.reason)
            elif counts.rows < self.min_rows:
                entry.update(
                    status="warming_up",
                    rows=counts.rows,
                    reason=f"{counts.rows} of the {self.min_rows} rows needed",
                )
            else:
                result = compare(
                    t.window.profile, counts, method=self.method, threshold=self.threshold
                )
                self._export(t.version, result, counts.rows, t.name)
                entry.update(status="ok", rows=counts.rows, **result.to_dict())
            if t.window is not None:
                entry["window"] = {
                    "max_rows": self.window_rows,
                    "max_seconds": self.window_seconds,
                    "rows_seen": t.window.seen_rows,
                }
            out.append(entry)
        return out

    def _export(self, version: str, result: DriftResult, rows: int, name: str = "") -> None:
        self.window_rows_gauge.labels(model_version=version).set(rows)
        for column in result.columns:
            if column.score is None:  # no values in the window (all missing)
                continue
            skew = column.statistics.get("jensen_shannon")
            if skew is not None:
                self.skew.labels(model=name, version=version, feature=column.column).set(skew)
            labels = {"feature_name": column.column, "model_version": version}
            self.feature_drift.labels(**labels).set(column.score)
            self.feature_threshold.labels(**labels).set(_score_threshold(column))
        self.drifted_share.labels(model_version=version).set(result.share_of_drifted_columns)
        prediction = result.prediction
        if prediction is not None and prediction.score is not None:
            self.prediction_drift.labels(model_version=version).set(prediction.score)
            self.prediction_threshold.labels(model_version=version).set(
                _score_threshold(prediction)
            )


def _score_threshold(column: FeatureDrift) -> float:
    """The score at which the column's statistic says drift (1 - p for p-value tests)."""
    return 1.0 - column.threshold if column.statistic in P_VALUES else column.threshold
