"""Shadow traffic: mirror answered rows to a deployment's candidate, off the response path.

The answer is produced first and never waits for the shadow. `mirror` only hands the rows to a
small thread pool; when `max_in_flight` shadow calls are already running it skips them (counted
as `skipped`), so shadow traffic can never slow the primary or queue up without bound. The
candidate is called directly (not through the batcher): its answers are compared with the ones
given, never returned, logged as answered predictions, or cached. Per row the result is
`agree`, `disagree`, `error` (the candidate failed, or refused the row) or `skipped`, counted
in `mloop_shadow_predictions_total{deployment, result}` and in the live counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mloop.serving.live_counts import LiveCounts
from mloop.serving.metrics import ServingMetrics
from mloop.serving.runtime import ModelRuntime

log = logging.getLogger("mloop.serving.shadow")

MAX_IN_FLIGHT = 2


class ShadowRunner:
    """Runs shadow calls in its own threads, at most `max_in_flight` at once."""

    def __init__(
        self, metrics: ServingMetrics, counts: LiveCounts, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self.metrics = metrics
        self.counts = counts
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._executor = ThreadPoolExecutor(max_in_flight, thread_name_prefix="mloop-shadow")
        self._closed = False

    def mirror(
        self,
        deployment: str,
        variant: str,
        runtime: ModelRuntime,
        rows: Sequence[Any],
        answered: Sequence[Any],
        drop: str | None = None,
    ) -> None:
        """Ask `variant` (served by `runtime`) about `rows`, compare with `answered` later.

        `drop` names a request field (the sticky key) to remove from object rows unless the
        candidate's signature has it. Never raises, never blocks.
        """
        if self._closed or not self._slots.acquire(blocking=False):
            self._count(deployment, variant, "skipped", len(rows))
            return
        try:
            self._executor.submit(self._run, deployment, variant, runtime, rows, answered, drop)
        except RuntimeError:  # shut down meanwhile
            self._slots.release()
            self._count(deployment, variant, "skipped", len(rows))

    def close(self) -> None:
        """Stop taking shadow calls; running ones finish in their threads."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, deployment, variant, runtime, rows, answered, drop) -> None:
        try:
            model = runtime.model
            if model is None:  # still loading: nothing to compare with
                self._count(deployment, variant, "skipped", len(rows))
                return
            if drop is not None and drop not in model.schema.names_set:
                rows = [_without(row, drop) for row in rows]
            labels, _ = model.predict(model.schema.to_frame(rows))
            theirs = np.asarray(labels).tolist()
            agree = sum(1 for a, b in zip(theirs, answered, strict=True) if _same(a, b))
            self._count(deployment, variant, "agree", agree)
            self._count(deployment, variant, "disagree", len(rows) - agree)
        except Exception as exc:  # a failing candidate never reaches the client
            log.warning("shadow call to %s/%s failed: %s", deployment, variant, exc)
            self._count(deployment, variant, "error", len(rows))
        finally:
            self._slots.release()

    def _count(self, deployment: str, variant: str, result: str, rows: int) -> None:
        if rows:
            self.metrics.shadow.labels(deployment=deployment, result=result).inc(rows)
            self.counts.record_shadow(deployment, variant, result, rows)


def _without(row: Any, field: str) -> Any:
    if isinstance(row, dict) and field in row:
        return {k: v for k, v in row.items() if k != field}
    return row


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    return bool(a == b)
