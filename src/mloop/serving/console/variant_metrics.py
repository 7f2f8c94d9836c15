"""Per-variant live numbers for the console, from the server's own Prometheus metrics.

The numbers come from the exposition `GET /metrics` serves (`ServingMetrics.render`: with
PROMETHEUS_MULTIPROC_DIR set it aggregates every worker), so the console shows what Prometheus
scrapes: `model_predictions_total{variant="deployment/variant", status}` gives requests and
errors, `model_prediction_latency_seconds_bucket{variant}` the p50/p99 latency (interpolated in
the buckets, as PromQL's histogram_quantile does). Counters only count up, so requests per
second need two readings: `RateMemory` keeps the last reading per variant (per process) and
the rate is the increase since then.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mloop.serving.metrics import ERROR, TIMEOUT, ServingMetrics

REQUESTS = "model_predictions"  # the parser drops a counter's `_total`
LATENCY = "model_prediction_latency_seconds"
FAILED = frozenset({ERROR, TIMEOUT})  # the model's fault; `invalid` is the client's
MIN_RATE_SECONDS = 1.0  # readings closer than this keep the previous rate


@dataclass
class VariantNumbers:
    """What the server counted for one variant since it started (all workers)."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] | None = None  # upper bound -> cumulative count

    @property
    def error_rate(self) -> float | None:
        answered = self.requests
        return self.errors / answered if answered else None

    def quantile_ms(self, q: float) -> float | None:
        """The q-quantile of the latency in milliseconds, None without observations."""
        value = bucket_quantile(q, self.buckets or {})
        return None if value is None else round(value * 1000, 3)


def bucket_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile: linear interpolation inside the bucket holding the q-th rank."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):  # in the open top bucket: the last finite bound
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside else 0.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def read_variants(metrics: ServingMetrics, deployment: str) -> dict[str, VariantNumbers]:
    """{variant: numbers} for one deployment, read from the /metrics exposition."""
    return variants_from_text(metrics.render().decode(), deployment)


def variants_from_text(text: str, deployment: str) -> dict[str, VariantNumbers]:
    """Parse an exposition and sum the series of `deployment`'s variants over versions."""
    prefix = f"{deployment}/"
    out: dict[str, VariantNumbers] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS, LATENCY):
            continue
        for sample in _samples(family.samples, prefix):
            name, labels, value = sample
            numbers = out.setdefault(labels["variant"][len(prefix) :], VariantNumbers())
            if name == f"{REQUESTS}_total":
                numbers.requests += value
                if labels.get("status") in FAILED:
                    numbers.errors += value
            elif name == f"{LATENCY}_bucket":
                buckets = numbers.buckets if numbers.buckets is not None else {}
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
                numbers.buckets = buckets
    return out


def _samples(samples: Iterable[Any], prefix: str) -> Iterable[tuple[str, dict[str, str], float]]:
    for sample in samples:
        variant = sample.labels.get("variant", "")
        if variant.startswith(prefix):
            yield sample.name, sample.labels, float(sample.value)


class RateMemory:
    """The last request total seen per (deployment, variant), to turn totals into a rate."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, float, float | None]] = {}

    def rate(self, deployment: str, variant: str, total: float) -> float | None:
        """Requests per second since the previous reading (None at the first one)."""
        now = self.clock()
        key = (deployment, variant)
        with self._lock:
            previous = self._seen.get(key)
            if previous is None:
                self._seen[key] = (now, total, None)
                return None
            then, before, last_rate = previous
            if now - then < MIN_RATE_SECONDS:
                return last_rate
            rate = max(total - before, 0.0) / (now - then)
            self._seen[key] = (now, total, rate)
            return rate


def live_rows(
    metrics: ServingMetrics, memory: RateMemory, deployment: str, variants: list[str]
) -> list[dict[str, Any]]:
    """One row per variant: requests, requests/s, p50/p99 ms and error rate."""
    found = read_variants(metrics, deployment)
    rows = []
    for variant in variants:
        numbers = found.get(variant, VariantNumbers())
        rows.append(
            {
                "variant": variant,
                "requests": int(numbers.requests),
                "per_second": memory.rate(deployment, variant, numbers.requests),
                "p50_ms": numbers.quantile_ms(0.5),
                "p99_ms": numbers.quantile_ms(0.99),
                "error_rate": numbers.error_rate,
            }
        )
    return rows
