"""Identities (people and services) and the roles they hold, in the platform database.

`admin` holds every role; every identity may read (`viewer`). Each change is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.security.access import Role
from mloop.store import Database
from mloop.store.governance import IdentityRow

ROLES = tuple(role.value for role in Role if role is not Role.PUBLIC)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


@dataclass(frozen=True)
class Identity:
    """Who is calling, with their roles."""

    name: str
    roles: frozenset[str]
    disabled: bool = False
    created_at: datetime | None = None
    created_by: str | None = None

    def holds(self, role: Role | str) -> bool:
        """True when the identity may act as `role` (admin holds all; everyone is a viewer)."""
        role = str(role)
        return role in self.roles or Role.ADMIN.value in self.roles or role == Role.VIEWER.value

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "roles": sorted(self.roles),
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


def parse_roles(roles: list[str] | tuple[str, ...]) -> list[str]:
    """Validate role names; ValidationError lists the known ones."""
    if not roles:
        raise ValidationError(
            "an identity needs at least one role", hint=f"roles: {', '.join(ROLES)}"
        )
    out = []
    for role in roles:
        value = str(role).strip().lower()
        if value not in ROLES:
            raise ValidationError(
                f"unknown role {role!r}: roles are {', '.join(ROLES)}", hint="e.g. --role ml_lead"
            )
        if value not in out:
            out.append(value)
    return out


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ValidationError(
            f"invalid identity name {name!r}: use letters, digits, '_', '.', '@' or '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return name


def _to_identity(row: IdentityRow) -> Identity:
    return Identity(row.name, frozenset(row.roles), row.disabled, row.created_at, row.created_by)


class IdentityStore:
    """Add, list, read and disable identities; `actor` is recorded in the audit trail."""

    def __init__(self, database: Database, audit=None) -> None:
        self.database = database
        self.audit = audit

    def add(self, name: str, roles: list[str], *, actor: str) -> Identity:
        check_name(name)
        wanted = parse_roles(roles)
        with self.database.session() as session:
            if session.get(IdentityRow, name) is not None:
                raise ConflictError(
                    f"identity '{name}' already exists", hint="see `mloop users list`"
                )
            row = IdentityRow(name=name, roles=wanted, disabled=False, created_by=actor)
            session.add(row)
            session.flush()
            identity = _to_identity(row)
        self._audit(actor, "identity.add", name, roles=wanted)
        return identity

    def get(self, name: str) -> Identity:
        with self.database.session() as session:
            row = session.get(IdentityRow, name)
            if row is None:
                raise NotFoundError(f"identity '{name}' not found", hint="see `mloop users list`")
            return _to_identity(row)

    def find(self, name: str) -> Identity | None:
        with self.database.session() as session:
            row = session.get(IdentityRow, name)
            return _to_identity(row) if row is not None else None

    def list(self) -> list[Identity]:
        with self.database.session() as session:
            rows = session.scalars(select(IdentityRow).order_by(IdentityRow.name)).all()
            return [_to_identity(row) for row in rows]

    def disable(self, name: str, *, actor: str) -> Identity:
        with self.database.session() as session:
            row = session.get(IdentityRow, name)
            if row is None:
                raise NotFoundError(f"identity '{name}' not found", hint="see `mloop users list`")
            if row.disabled:
                raise ConflictError(f"identity '{name}' is already disabled")
            row.disabled = True
            identity = _to_identity(row)
        self._audit(actor, "identity.disable", name)
        return identity

    def _audit(self, actor: str, action: str, target: str, **detail: object) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, **detail)
