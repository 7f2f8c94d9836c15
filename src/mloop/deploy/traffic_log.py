"""Which deployment variant answered how many rows, kept in the platform database.

The prediction log records the model version of each answer, not the deployment or variant
that routed it: one version can serve plain `/predict`, several deployments and several
variants at once. The deployment answer path tells a `TrafficLog` every group of rows a
variant answered (`record`, no I/O); its thread sums them and writes one row per
(deployment, variant) about once a second. `recent_counts` sums those rows, so `mloop deploy
status` counts each deployment's own traffic, from every server and worker.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from mloop.background import BackgroundQueue
from mloop.store import Database
from mloop.store.deployments import DeploymentTrafficRow
from mloop.store.models import utcnow

Entry = tuple[str, str, int, bool]  # deployment, variant, rows, ok


class TrafficLog:
    """Counts rows per (deployment, variant) off the request path and writes them in bulk."""

    def __init__(self, database: Database, *, linger: float = 1.0) -> None:
        self.database = database
        self.dropped = 0
        self._queue: BackgroundQueue[Entry] = BackgroundQueue(
            "mloop-deploy-traffic", self._write, linger=linger, batch=10_000
        )

    def record(self, deployment: str, variant: str, rows: int, ok: bool) -> None:
        """`rows` answered (ok) or failed by `variant`'s model; never blocks."""
        if not self._queue.put((deployment, variant, rows, ok)):
            self.dropped += rows

    def flush(self, timeout: float | None = None) -> bool:
        return self._queue.flush(timeout)

    def close(self) -> None:
        self._queue.close()

    def _write(self, entries: list[Entry]) -> None:
        totals: dict[tuple[str, str], list[int]] = {}
        for deployment, variant, rows, ok in entries:
            counts = totals.setdefault((deployment, variant), [0, 0])
            counts[0] += rows
            counts[1] += 0 if ok else rows
        now = utcnow()
        with self.database.session() as session:
            session.add_all(
                DeploymentTrafficRow(
                    deployment=deployment,
                    variant=variant,
                    created_at=now,
                    requests=requests,
                    errors=errors,
                )
                for (deployment, variant), (requests, errors) in totals.items()
            )


def recent_counts(database: Database, deployment: str, since: datetime) -> dict[str, dict]:
    """{variant: {requests, errors}} that `deployment` answered since `since`."""
    query = (
        select(
            DeploymentTrafficRow.variant,
            func.sum(DeploymentTrafficRow.requests),
            func.sum(DeploymentTrafficRow.errors),
        )
        .where(
            DeploymentTrafficRow.deployment == deployment,
            DeploymentTrafficRow.created_at >= since,
        )
        .group_by(DeploymentTrafficRow.variant)
    )
    with database.session() as session:
        rows = session.execute(query).all()
    return {variant: {"requests": int(n or 0), "errors": int(e or 0)} for variant, n, e in rows}
