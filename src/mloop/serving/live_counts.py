"""What one server saw of each deployment variant: requests, errors, latency, shadow agreement.

The deployment answer path records every group of rows a variant answered (or failed: a 5xx
or a timeout of the variant's model; a client's 4xx is not the variant's fault and is not
recorded). Totals count since the server started; a bounded ring of recent entries
`(time, latency, ok, rows)` per variant answers "since T" for the canary controller and gives
the latency percentiles. It implements `mloop.deploy.service.LiveCounts` (`snapshot`), which
`GET /deployments/{name}` and the A/B report read from `app.state.mloop_deploy_counts`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

RING = 4096  # recent entries kept per variant
SHADOW_RESULTS = ("agree", "disagree", "error", "skipped")


@dataclass
class _Variant:
    requests: int = 0
    errors: int = 0
    ring: deque[tuple[float, float, bool, int]] = field(default_factory=deque)  # bounded


class LiveCounts:
    """Per (deployment, variant) counters and recent entries; thread-safe."""

    def __init__(
        self, ring: int = RING, sink: Callable[[str, str, int, bool], None] | None = None
    ) -> None:
        self.ring = ring
        self.sink = sink  # also told every record (deploy.traffic_log.TrafficLog.record)
        self._lock = threading.Lock()
        self._variants: dict[tuple[str, str], _Variant] = {}
        self._shadow: dict[tuple[str, str], dict[str, int]] = {}

    def record(
        self, deployment: str, variant: str, seconds: float, ok: bool, rows: int = 1
    ) -> None:
        """One request's rows answered by `variant` (ok) or failed by its model (not ok)."""
        with self._lock:
            entry = self._variants.get((deployment, variant))
            if entry is None:
                entry = self._variants[(deployment, variant)] = _Variant(
                    ring=deque(maxlen=self.ring)
                )
            entry.requests += rows
            if not ok:
                entry.errors += rows
            entry.ring.append((time.time(), seconds, ok, rows))
        if self.sink is not None:
            self.sink(deployment, variant, rows, ok)

    def record_shadow(self, deployment: str, variant: str, result: str, rows: int = 1) -> None:
        """Mirrored rows for candidate `variant`: agree, disagree, error or skipped."""
        with self._lock:
            counts = self._shadow.setdefault(
                (deployment, variant), dict.fromkeys(SHADOW_RESULTS, 0)
            )
            counts[result] += rows

    def window(
        self, deployment: str, variant: str, since: datetime | None
    ) -> tuple[int, int, float | None]:
        """(requests, errors, p95 ms) of `variant` since `since` (all recent entries if None)."""
        cutoff = since.timestamp() if since is not None else float("-inf")
        with self._lock:
            entry = self._variants.get((deployment, variant))
            recent = [e for e in entry.ring if e[0] >= cutoff] if entry is not None else []
        requests = sum(e[3] for e in recent)
        errors = sum(e[3] for e in recent if not e[2])
        return requests, errors, _percentile([e[1] for e in recent], 95)

    def snapshot(self, deployment: str) -> dict[str, dict[str, float]]:
        """{variant: {requests, errors, p50_ms, p95_ms, shadow_*}} for one deployment."""
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            variants = [
                (key[1], entry.requests, entry.errors, [e[1] for e in entry.ring])
                for key, entry in self._variants.items()
                if key[0] == deployment
            ]
            shadows = [(k[1], dict(v)) for k, v in self._shadow.items() if k[0] == deployment]
        for variant, requests, errors, latencies in variants:
            counts: dict[str, float] = {"requests": requests, "errors": errors}
            for q in (50, 95):
                value = _percentile(latencies, q)
                if value is not None:
                    counts[f"p{q}_ms"] = value
            out[variant] = counts
        for variant, results in shadows:
            counts = out.setdefault(variant, {})
            for result, n in results.items():
                counts[f"shadow_{result}"] = n
            compared = results["agree"] + results["disagree"]
            if compared:
                counts["shadow_agreement"] = round(results["agree"] / compared, 4)
        return out


def _percentile(seconds: list[float], q: float) -> float | None:
    """The q-th percentile of latencies in seconds, as milliseconds (None without data)."""
    if not seconds:
        return None
    return round(float(np.percentile(np.asarray(seconds), q)) * 1000, 3)
