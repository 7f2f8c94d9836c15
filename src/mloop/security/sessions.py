"""Server-side console sessions: a random cookie value, stored only as its sha256.

Every worker of a server reads the same `console_sessions` rows, so a session works on any
of them and logout (`revoke`) ends it everywhere. Each session has its own CSRF token.
Expired and revoked rows are deleted by `purge` (each console login calls it), so the table
holds only live sessions plus those that ended since the last login.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_

from mloop.security.identities import Identity, IdentityStore
from mloop.store import Database
from mloop.store.console import ConsoleSessionRow
from mloop.store.models import utcnow

LIFETIME = timedelta(hours=12)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class SessionStore:
    """Open, look up and revoke console sessions."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def open(self, identity: str, lifetime: timedelta = LIFETIME) -> tuple[str, str]:
        """A new session for `identity`: (cookie value, CSRF token)."""
        value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.database.session() as session:
            session.add(
                ConsoleSessionRow(
                    id_sha256=_digest(value),
                    identity=identity,
                    csrf_token=csrf,
                    expires_at=utcnow() + lifetime,
                )
            )
        return value, csrf

    def lookup(self, value: str) -> tuple[Identity, str] | None:
        """(identity, CSRF token) of a live session, or None (unknown, expired, revoked, or
        its identity disabled)."""
        if not value:
            return None
        with self.database.session() as session:
            row = session.get(ConsoleSessionRow, _digest(value))
            if row is None or row.revoked_at is not None or _aware(row.expires_at) <= utcnow():
                return None
            name, csrf = row.identity, row.csrf_token
        identity = IdentityStore(self.database).find(name)
        if identity is None or identity.disabled:
            return None
        return identity, csrf

    def purge(self, now: datetime | None = None) -> int:
        """Delete the sessions that expired (by `now`) or were revoked; returns how many."""
        moment = now or utcnow()
        ended = or_(
            ConsoleSessionRow.expires_at <= moment, ConsoleSessionRow.revoked_at.isnot(None)
        )
        with self.database.session() as session:
            return session.execute(delete(ConsoleSessionRow).where(ended)).rowcount or 0

    def revoke(self, value: str) -> str | None:
        """End a session; returns its identity (None when there was no live one)."""
        with self.database.session() as session:
            row = session.get(ConsoleSessionRow, _digest(value)) if value else None
            if row is None or row.revoked_at is not None:
                return None
            row.revoked_at = utcnow()
            return row.identity
