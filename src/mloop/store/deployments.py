"""Tables of deployments: the current spec of each, and every revision it ever had.

`deployments.revision` is the optimistic-concurrency token: an update names the revision it
read and succeeds only if that is still the current one (`UPDATE ... WHERE revision = :read`),
so two concurrent updates never interleave. The history row of each revision is written in
the same transaction, keyed by (name, revision): no revision number is ever given twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base, utcnow


class DeploymentRow(Base):
    """A deployment's current spec and revision."""

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))


class DeploymentRevisionRow(Base):
    """One revision of a deployment: its spec, the versions its references held, and why."""

    __tablename__ = "deployment_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    # apply | shift | promote | rollback | canary-step | canary-rollback | delete
    reason: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # {variant: {model, name, version, uri}} as resolved when the revision was written.
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # For a rollback: the revision whose spec it restored (the next rollback goes before it).
    restored_from: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (UniqueConstraint("name", "revision", name="uq_deployment_history_rev"),)


class DeploymentTrafficRow(Base):
    """Rows a deployment variant answered (and failed) in one flush of a server's traffic log.

    Written by `deploy.traffic_log.TrafficLog` about once a second per server while traffic
    flows; `mloop deploy status` sums the recent rows per variant.
    """

    __tablename__ = "deployment_traffic"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_deployment_traffic_time", "deployment", "created_at"),)
