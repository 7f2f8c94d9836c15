"""Reading and writing deployments in the platform database, with optimistic concurrency.

`write(...)` takes the revision the caller read (None for "must not exist yet") and commits the
new spec and its history row in one transaction only if that revision is still current;
otherwise it raises ConflictError and changes nothing. Both SQLite and PostgreSQL give the
guarantee: the guarded UPDATE's row count, and the primary / unique keys on insert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from mloop.errors import ConflictError, NotFoundError
from mloop.store import Database
from mloop.store.deployments import DeploymentRevisionRow, DeploymentRow


@dataclass(frozen=True)
class Deployment:
    """A deployment as stored: its current spec document and revision."""

    name: str
    spec: dict[str, Any]
    revision: int
    updated_at: datetime
    updated_by: str
    is_default: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "default": self.is_default,
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
            "spec": self.spec,
        }


@dataclass(frozen=True)
class Revision:
    """One row of a deployment's history."""

    name: str
    revision: int
    created_at: datetime
    actor: str
    reason: str
    spec: dict[str, Any] | None
    resolved: dict[str, Any] | None
    note: str | None
    restored_from: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "created_at": _iso(self.created_at),
            "actor": self.actor,
            "reason": self.reason,
            "note": self.note,
            "restored_from": self.restored_from,
            "resolved": self.resolved,
            "spec": self.spec,
        }


class DeploymentRecords:
    """The deployments and deployment_history tables of one platform database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, name: str) -> Deployment:
        found = self.find(name)
        if found is None:
            known = ", ".join(d.name for d in self.list()) or "none yet"
            raise NotFoundError(
                f"deployment '{name}' not found (deployments: {known})",
                hint="create it: mloop deploy apply SPEC.yaml",
            )
        return found

    def find(self, name: str) -> Deployment | None:
        with self.database.session() as session:
            row = session.get(DeploymentRow, name)
            return _deployment(row) if row is not None else None

    def list(self) -> list[Deployment]:
        with self.database.session() as session:
            rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.name)).all()
            return [_deployment(row) for row in rows]

    def history(self, name: str) -> list[Revision]:
        """Every revision of `name`, oldest first (kept after a delete)."""
        with self.database.session() as session:
            rows = session.scalars(
                select(DeploymentRevisionRow)
                .where(DeploymentRevisionRow.name == name)
                .order_by(DeploymentRevisionRow.revision)
            ).all()
            return [_revision(row) for row in rows]

    def write(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        expected: int | None,
        actor: str,
        reason: str,
        resolved: dict[str, Any] | None = None,
        note: str | None = None,
        restored_from: int | None = None,
        default: bool = False,
    ) -> Deployment:
        """Commit a new revision if `expected` is still current (None: create); else Conflict."""
        now = datetime.now(UTC)
        try:
            with self.database.session() as session:
                if expected is None:
                    last = session.scalar(
                        select(func.max(DeploymentRevisionRow.revision)).where(
                            DeploymentRevisionRow.name == name
                        )
                    )
                    revision = (last or 0) + 1
                    session.add(
                        DeploymentRow(
                            name=name,
                            spec=spec,
                            revision=revision,
                            is_default=default,
                            created_at=now,
                            updated_at=now,
                            updated_by=actor,
                        )
                    )
                    session.flush()
                else:
                    revision = expected + 1
                    changed = session.execute(
                        update(DeploymentRow)
                        .where(DeploymentRow.name == name, DeploymentRow.revision == expected)
                        .values(
                            spec=spec,
                            revision=revision,
                            is_default=default,
                            updated_at=now,
                            updated_by=actor,
                        )
                    ).rowcount
                    if changed != 1:
                        raise _stale(name, expected)
                if default:  # one default deployment: the one that answers /predict
                    session.execute(
                        update(DeploymentRow)
                        .where(DeploymentRow.name != name, DeploymentRow.is_default.is_(True))
                        .values(is_default=False)
                    )
                session.add(
                    DeploymentRevisionRow(
                        name=name,
                        revision=revision,
                        created_at=now,
                        actor=actor,
                        reason=reason,
                        spec=spec,
                        resolved=resolved,
                        note=note,
                        restored_from=restored_from,
                    )
                )
        except IntegrityError:
            raise _stale(name, expected) from None
        return Deployment(name, spec, revision, now, actor, default)

    def remove(self, name: str, *, expected: int, actor: str, note: str | None = None) -> int:
        """Delete the deployment (history stays, with a `delete` revision); Conflict if stale."""
        now = datetime.now(UTC)
        try:
            with self.database.session() as session:
                gone = session.execute(
                    delete(DeploymentRow).where(
                        DeploymentRow.name == name, DeploymentRow.revision == expected
                    )
                ).rowcount
                if gone != 1:
                    raise _stale(name, expected)
                session.add(
                    DeploymentRevisionRow(
                        name=name,
                        revision=expected + 1,
                        created_at=now,
                        actor=actor,
                        reason="delete",
                        note=note,
                    )
                )
        except IntegrityError:
            raise _stale(name, expected) from None
        return expected + 1


def _stale(name: str, expected: int | None) -> ConflictError:
    if expected is None:
        return ConflictError(
            f"deployment '{name}' was created by someone else meanwhile",
            hint=f"read it (mloop deploy status {name}) and apply again",
        )
    return ConflictError(
        f"deployment '{name}' changed since revision {expected} was read: not applied",
        hint=f"read the current revision (mloop deploy status {name}) and retry",
    )


def _deployment(row: DeploymentRow) -> Deployment:
    return Deployment(
        row.name, row.spec, row.revision, _utc(row.updated_at), row.updated_by, row.is_default
    )


def _revision(row: DeploymentRevisionRow) -> Revision:
    return Revision(
        row.name,
        row.revision,
        _utc(row.created_at),
        row.actor,
        row.reason,
        row.spec,
        row.resolved,
        row.note,
        row.restored_from,
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
