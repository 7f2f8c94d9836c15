"""Tables of the web console's login: password hashes and server-side sessions.

Created by the Alembic revision `0009_console_login`. A session row is looked up by the
sha256 of its cookie value (the cookie itself is never stored), so every worker of a server
shares the sessions and logout revokes one for all of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base, utcnow


class PasswordRow(Base):
    """An identity's console password: scrypt hash with its own random salt."""

    __tablename__ = "identity_passwords"

    identity: Mapped[str] = mapped_column(ForeignKey("identities.name"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSessionRow(Base):
    """One login to the console: who, its CSRF token, until when, whether revoked."""

    __tablename__ = "console_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity: Mapped[str] = mapped_column(ForeignKey("identities.name"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
