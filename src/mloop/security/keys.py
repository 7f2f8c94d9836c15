"""API keys: `mlk_<key id>_<secret>`. Only the secret's sha256 is stored; it is shown once.

The key id is public (it names the key in lists, logs and `mloop keys revoke`); the secret part
is 32 random bytes, so a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mloop.errors import AuthenticationError, ConflictError, NotFoundError
from mloop.security.identities import Identity, IdentityStore, _to_identity
from mloop.store import Database
from mloop.store.governance import ApiKeyRow, IdentityRow
from mloop.store.models import utcnow

PREFIX = "mlk_"


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed (never with its secret)."""

    key_id: str
    identity: str
    label: str | None
    created_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "identity": self.identity,
            "label": self.label,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(row.key_id, row.identity, row.label, row.created_at, row.revoked_at)


class KeyStore:
    """Create, list, revoke and check API keys."""

    def __init__(self, database: Database, audit=None) -> None:
        self.database = database
        self.audit = audit

    def create(
        self, identity: str, *, actor: str, label: str | None = None
    ) -> tuple[str, ApiKeyInfo]:
        """A new key for an active identity: (the full key, shown once; its record)."""
        holder = IdentityStore(self.database).get(identity)
        if holder.disabled:
            raise ConflictError(f"identity '{identity}' is disabled: it cannot get new keys")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.database.session() as session:
            row = ApiKeyRow(
                key_id=key_id, identity=identity, secret_sha256=_digest(secret), label=label
            )
            session.add(row)
            session.flush()
            info = _info(row)
        if self.audit is not None:
            self.audit.record(actor, "key.create", key_id, identity=identity, label=label)
        return f"{PREFIX}{key_id}_{secret}", info

    def list(self, identity: str | None = None) -> list[ApiKeyInfo]:
        with self.database.session() as session:
            query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
            if identity:
                query = query.where(ApiKeyRow.identity == identity)
            return [_info(row) for row in session.scalars(query).all()]

    def revoke(self, key_id: str, *, actor: str) -> ApiKeyInfo:
        key_id = key_id.removeprefix(PREFIX).split("_")[0]
        with self.database.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"API key '{key_id}' not found", hint="see `mloop keys list`")
            if row.revoked_at is not None:
                raise ConflictError(f"API key '{key_id}' is already revoked")
            row.revoked_at = utcnow()
            info = _info(row)
        if self.audit is not None:
            self.audit.record(actor, "key.revoke", key_id, identity=info.identity)
        return info

    def authenticate(self, key: str) -> Identity:
        """The active identity a key belongs to, or AuthenticationError saying why not."""
        body = key.strip().removeprefix(PREFIX)
        key_id, _, secret = body.partition("_")
        if not key.strip().startswith(PREFIX) or not key_id or not secret:
            raise AuthenticationError("malformed API key: expected mlk_<id>_<secret>")
        with self.database.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
                raise AuthenticationError("invalid API key")
            if row.revoked_at is not None:
                raise AuthenticationError(f"API key '{key_id}' was revoked")
            holder = session.get(IdentityRow, row.identity)
            if holder is None or holder.disabled:
                raise AuthenticationError(f"identity '{row.identity}' is disabled")
            return _to_identity(holder)
