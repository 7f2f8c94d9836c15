"""Prometheus metrics of one server app, in their own registry (no global state between apps).

With several worker processes set `PROMETHEUS_MULTIPROC_DIR`: the metrics then write to shared
files and `render()` aggregates every worker through `MultiProcessCollector`.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

# Model calls take milliseconds; the buckets resolve 1 ms .. 10 s.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

SUCCESS = "success"
ERROR = "error"
INVALID = "invalid"
NO_MODEL = "none"  # the version label while no model is loaded


class ServingMetrics:
    """Counters and histograms for predictions; `render()` gives the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions answered, per row, by model version and outcome.",
            ["model_version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "model_prediction_latency_seconds",
            "Time to answer one prediction request (validation + model call).",
            ["model_version"],
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
        self.log_dropped = Counter(
            "mloop_prediction_log_dropped_total",
            "Prediction log rows dropped because the log queue was full or the write failed.",
            registry=self.registry,
        )

    def count(self, version: str, status: str, rows: int = 1) -> None:
        self.predictions.labels(model_version=version, status=status).inc(rows)

    def observe(self, version: str, seconds: float, confidences: list[float] | None) -> None:
        """Record one answered request: its latency and each row's confidence."""
        self.latency.labels(model_version=version).observe(seconds)
        if confidences:
            histogram = self.confidence.labels(model_version=version)
            for value in confidences:
                histogram.observe(value)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app (of every worker in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
