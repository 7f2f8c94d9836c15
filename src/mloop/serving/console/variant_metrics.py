"""Per-variant live numbers for the console, from the server's own Prometheus metrics.

The numbers come from the exposition `GET /metrics` serves (`ServingMetrics.render`: with
PROMETHEUS_MULTIPROC_DIR set it aggregates every worker), so the console shows what Prometheus
scrapes: `model_predictions_total{variant="deployment/variant", status}` gives requests and
errors, `model_prediction_latency_seconds_bucket{variant}` the p50/p99 latency (interpolated in
the buckets, as PromQL's histogram_quantile does). Those are totals since the server started;
"live" means over a recent window, as Grafana's `rate(...[5m])`: `LiveWindow` keeps a short
history of readings per variant (in this process, taken when the page is viewed) and counts the
increase over the last WINDOW_SECONDS, treating a counter that went down as a worker restart
(the increase is then the new total, as PromQL's counter-reset rule).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mloop.serving.metrics import ERROR, TIMEOUT, ServingMetrics

REQUESTS = "model_predictions"  # the parser drops a counter's `_total`
LATENCY = "model_prediction_latency_seconds"
FAILED = frozenset({ERROR, TIMEOUT})  # the model's fault; `invalid` is the client's
WINDOW_SECONDS = 300.0  # "live" = the last 5 minutes, as rate(...[5m])
MIN_READING_SECONDS = 1.0  # readings closer than this are not kept


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


def increase(older: VariantNumbers, newer: VariantNumbers) -> VariantNumbers:
    """What was counted between two readings; a counter that went down means the worker
    restarted, so everything `newer` holds was counted since."""
    old_buckets, new_buckets = older.buckets or {}, newer.buckets or {}
    restarted = (
        newer.requests < older.requests
        or newer.errors < older.errors
        or any(new_buckets.get(bound, 0.0) < count for bound, count in old_buckets.items())
    )
    if restarted:
        return VariantNumbers(newer.requests, newer.errors, dict(new_buckets) or None)
    buckets = {bound: count - old_buckets.get(bound, 0.0) for bound, count in new_buckets.items()}
    return VariantNumbers(newer.requests - older.requests, newer.errors - older.errors, buckets)


def _add(total: VariantNumbers, more: VariantNumbers) -> VariantNumbers:
    buckets = dict(total.buckets or {})
    for bound, count in (more.buckets or {}).items():
        buckets[bound] = buckets.get(bound, 0.0) + count
    return VariantNumbers(total.requests + more.requests, total.errors + more.errors, buckets)


@dataclass(frozen=True)
class Reading:
    """The totals of one variant at one moment (monotonic seconds)."""

    at: float
    totals: VariantNumbers


@dataclass(frozen=True)
class LiveNumbers:
    """One variant's numbers over `seconds` (None: since the server started)."""

    counted: VariantNumbers
    seconds: float | None
    total_requests: float

    @property
    def per_second(self) -> float | None:
        return None if not self.seconds else self.counted.requests / self.seconds

    @property
    def label(self) -> str:
        return "since start" if self.seconds is None else window_label(self.seconds)


def window_label(seconds: float) -> str:
    """'last 42 s', 'last 5 min': what a span of readings covers, for people."""
    if seconds < 90:
        return f"last {seconds:.0f} s"
    return f"last {seconds / 60:.0f} min"


class LiveWindow:
    """Recent readings per (deployment, variant) and the numbers over the last `window` s.

    Bounded: a reading is kept only if it is at least `min_gap` seconds after the previous
    one, and only the readings inside the window plus the newest one before it stay (at most
    window / min_gap + 2 per variant). The numbers run from the oldest kept reading inside the
    window (or, if none is at least `min_gap` old, the one just before it) to now.
    """

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        clock: Any = time.monotonic,
        min_gap: float = MIN_READING_SECONDS,
    ) -> None:
        self.window = window
        self.clock = clock
        self.min_gap = min_gap
        self._lock = threading.Lock()
        self._readings: dict[tuple[str, str], deque[Reading]] = {}

    def observe(self, deployment: str, variant: str, totals: VariantNumbers) -> LiveNumbers:
        """Record this reading (if due) and the numbers over the window up to it."""
        now = self.clock()
        current = Reading(now, totals)
        with self._lock:
            kept = self._readings.setdefault((deployment, variant), deque())
            if not kept or now - kept[-1].at >= self.min_gap:
                kept.append(current)
            start = now - self.window
            while len(kept) > 1 and kept[1].at < start:  # the window plus one reading
                kept.popleft()
            chain = self._chain(list(kept), now, start)
        if chain is None:
            return LiveNumbers(totals, None, totals.requests)
        if chain[-1] is not current:
            chain.append(current)
        counted = VariantNumbers()
        for older, newer in zip(chain, chain[1:], strict=False):
            counted = _add(counted, increase(older.totals, newer.totals))
        return LiveNumbers(counted, now - chain[0].at, totals.requests)

    def _chain(self, kept: list[Reading], now: float, start: float) -> list[Reading] | None:
        """The kept readings from the baseline on; None while none is old enough."""
        old_enough = [i for i, r in enumerate(kept) if now - r.at >= self.min_gap]
        if not old_enough:
            return None
        inside = [i for i in old_enough if kept[i].at >= start]
        return kept[inside[0] if inside else old_enough[-1] :]


def live_rows(
    metrics: ServingMetrics, window: LiveWindow, deployment: str, variants: list[str]
) -> list[dict[str, Any]]:
    """One row per variant over the window: requests, requests/s, p50/p99 ms, error rate."""
    found = read_variants(metrics, deployment)
    rows = []
    for variant in variants:
        live = window.observe(deployment, variant, found.get(variant, VariantNumbers()))
        rows.append(
            {
                "variant": variant,
                "window": live.label,
                "requests": int(live.counted.requests),
                "total_requests": int(live.total_requests),
                "per_second": live.per_second,
                "p50_ms": live.counted.quantile_ms(0.5),
                "p99_ms": live.counted.quantile_ms(0.99),
                "error_rate": live.counted.error_rate,
            }
        )
    return rows
