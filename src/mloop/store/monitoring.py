"""Tables of the monitoring loop: ground-truth labels, received alerts, retraining jobs.

Each is written (committed) before the request that created it is acknowledged, so a crash or
a restart loses nothing the server said it had.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base, utcnow


class FeedbackRecord(Base):
    """The actual value (ground truth) for one logged prediction; one label per prediction."""

    __tablename__ = "feedback"

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    actual: Mapped[Any] = mapped_column(JSON)
    # Copied from the prediction log so windowed quality needs no join.
    prediction: Mapped[Any] = mapped_column(JSON)
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_feedback_model_received", "model_name", "model_version", "received_at"),
    )


class AlertRecord(Base):
    """One alert as Alertmanager reported it (firing or resolved), and what mloop did with it."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fingerprint: Mapped[str] = mapped_column(String(64))
    alertname: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    group_key: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (Index("ix_alerts_fingerprint", "fingerprint", "starts_at"),)


class RetrainJob(Base):
    """A retraining request: pending -> running -> succeeded | failed. Resumed at startup."""

    __tablename__ = "retrain_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    # The alert (fingerprint + start) that asked for it: the same alert never starts two jobs.
    dedup_key: Mapped[str] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text)
    new_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_retrain_jobs_model_status", "model_name", "status"),)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view of the job (for the API and the CLI)."""
        return {
            "id": self.id,
            "status": self.status,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "reason": self.reason,
            "data": self.data,
            "new_version": self.new_version,
            "run_id": self.run_id,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
