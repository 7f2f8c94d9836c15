"""Retention: how long the prediction log, feedback labels and the audit trail are kept.

Each table has an age limit (days) and a size limit (rows); 0 keeps everything. Prediction and
feedback rows past a limit are deleted. Audit rows are pruned only from the front of the chain
and only behind a signed checkpoint (`governance/checkpoints.py`), so `mloop audit verify`
still vouches for the whole chain. Applied by `mloop retention apply [--dry-run]` and, every
`MLOOP_RETENTION_INTERVAL_SECONDS`, by `mloop worker` (`RetentionTimer`): one process, not
every server worker.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from mloop.governance.audit import AuditLog
from mloop.governance.checkpoints import prune_audit
from mloop.settings import Settings
from mloop.store import Database, PredictionRecord
from mloop.store.governance import AuditHeadRow, AuditRow
from mloop.store.monitoring import FeedbackRecord

log = logging.getLogger("mloop.retention")

TABLES = ("predictions", "feedback", "audit")


@dataclass(frozen=True)
class Policy:
    """Keep rows of `table` for `days` (0: no age limit) and at most `rows` (0: no limit)."""

    table: str
    days: float = 0.0
    rows: int = 0

    @property
    def active(self) -> bool:
        return self.days > 0 or self.rows > 0

    def describe(self) -> str:
        parts = [f"{self.days:g} days"] if self.days > 0 else []
        parts += [f"{self.rows} rows"] if self.rows > 0 else []
        return ", ".join(parts) or "keep everything"


@dataclass(frozen=True)
class Outcome:
    """What one policy did (or, in a dry run, would do) to its table."""

    table: str
    policy: str
    deleted: int
    kept: int
    dry_run: bool
    checkpoint: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def audit_detail(self) -> dict[str, Any]:
        """The audit row's detail of this pass: flat counts and the checkpoint's range."""
        detail: dict[str, Any] = {"policy": self.policy, "deleted": self.deleted, "kept": self.kept}
        if self.checkpoint:
            detail.update(checkpoint=self.checkpoint["id"], through_seq=self.checkpoint["last_seq"])
        return detail


def record_outcomes(audit: AuditLog, actor: str, outcomes: list[Outcome]) -> None:
    """Write one `retention.apply` audit row per table that lost rows (never in a dry run)."""
    for outcome in outcomes:
        if outcome.deleted and not outcome.dry_run:
            audit.record(actor, "retention.apply", outcome.table, **outcome.audit_detail())


def policies(settings: Settings) -> list[Policy]:
    """The three policies configured by MLOOP_RETENTION_*."""
    return [
        Policy(
            "predictions", settings.retention_predictions_days, settings.retention_predictions_rows
        ),
        Policy("feedback", settings.retention_feedback_days, settings.retention_feedback_rows),
        Policy("audit", settings.retention_audit_days, settings.retention_audit_rows),
    ]


def apply_retention(
    database: Database,
    audit_secret: bytes,
    rules: list[Policy],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Outcome]:
    """Apply each active policy; a dry run counts what would go and changes nothing."""
    now = now or datetime.now(UTC)
    out = []
    for rule in rules:
        if not rule.active:
            continue
        if rule.table == "audit":
            out.append(_audit(database, audit_secret, rule, dry_run, now))
        else:
            column = PredictionRecord.created_at
            if rule.table == "feedback":
                column = FeedbackRecord.received_at
            out.append(_time_table(database, column, rule, dry_run, now))
    return out


def _time_table(database: Database, column: Any, rule: Policy, dry_run: bool, now: datetime):
    """Delete rows whose time `column` is past the age limit or beyond the newest `rows`."""
    table = column.class_
    with database.session() as session:
        total = session.scalar(select(func.count()).select_from(table)) or 0
        cutoff = now - timedelta(days=rule.days) if rule.days > 0 else None
        if rule.rows > 0:  # the newest row beyond the limit: it and everything older go
            nth = session.scalar(select(column).order_by(column.desc()).offset(rule.rows).limit(1))
            if nth is not None and (cutoff is None or _aware(nth) >= cutoff):
                cutoff = None
                where = column <= nth
            else:
                where = column < cutoff if cutoff is not None else None
        else:
            where = column < cutoff
        if where is None:
            gone = 0
        elif dry_run:
            gone = session.scalar(select(func.count()).select_from(table).where(where)) or 0
        else:
            gone = session.execute(delete(table).where(where)).rowcount or 0
    if gone and not dry_run:
        log.info("retention: deleted %d %s rows (%s)", gone, rule.table, rule.describe())
    return Outcome(rule.table, rule.describe(), gone, total - gone, dry_run)


def _aware(value: datetime) -> datetime:
    """SQLite hands stored UTC times back naive."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _audit(database: Database, secret: bytes, rule: Policy, dry_run: bool, now: datetime):
    """Prune the chain's prefix past the limits behind a signed checkpoint."""
    with database.session() as session:
        head = session.scalar(select(AuditHeadRow.seq).where(AuditHeadRow.id == 1)) or 0
        first = session.scalar(select(func.min(AuditRow.seq)))
        upto = 0
        if rule.rows > 0:
            upto = head - rule.rows
        if rule.days > 0:
            cutoff = (now - timedelta(days=rule.days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            # the chain is pruned from the front only: up to the first row still young enough
            young = session.scalar(
                select(func.min(AuditRow.seq)).where(AuditRow.created_at >= cutoff)
            )
            upto = max(upto, (young - 1) if young is not None else head)
    present = head - (first - 1) if first is not None else 0
    start = (first - 1) if first is not None else head
    gone = max(0, upto - start)
    point = None
    if gone and not dry_run:
        checkpoint = prune_audit(database, secret, upto)
        point = checkpoint.to_dict() if checkpoint else None
        log.info("retention: pruned audit rows up to %d behind checkpoint %s", upto, point)
    return Outcome("audit", rule.describe(), gone, present - gone, dry_run, point)


class RetentionTimer:
    """A daemon thread applying the policies every `interval` seconds (in `mloop worker`)."""

    def __init__(
        self,
        database: Database,
        secret: bytes,
        rules: list[Policy],
        interval: float,
        audit: AuditLog | None = None,
    ) -> None:
        self.database, self.secret, self.rules, self.interval = database, secret, rules, interval
        self.audit = audit  # where each pass that deleted rows is recorded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mloop-retention", daemon=True)
        self.runs = 0

    @property
    def active(self) -> bool:
        return any(rule.active for rule in self.rules)

    def start(self) -> RetentionTimer:
        if self.active:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcomes = apply_retention(self.database, self.secret, self.rules)
                if self.audit is not None:
                    record_outcomes(self.audit, "mloop:worker", outcomes)
            except Exception:  # a failed pass is logged; the next interval tries again
                log.exception("retention pass failed")
            self.runs += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
