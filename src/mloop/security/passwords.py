"""Console passwords: scrypt hashes (stdlib) with a random salt, compared in constant time.

Stored as `scrypt$n$r$p$<salt hex>$<hash hex>` so the cost can be raised later without
breaking stored hashes. A login for an unknown identity still computes one hash, so the
answer's timing does not tell whether the identity exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mloop.errors import AuthenticationError, ValidationError
from mloop.security.identities import Identity, IdentityStore
from mloop.store import Database
from mloop.store.console import PasswordRow
from mloop.store.models import utcnow

N, R, P = 2**14, 8, 1
MIN_LENGTH = 8
_DUMMY = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def hash_password(password: str) -> str:
    """The stored form of `password`, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    try:
        _scheme, n, r, p, salt, want = stored.split("$")
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), want)


class PasswordStore:
    """Set and check identities' console passwords; `audit` records changes (no secrets)."""

    def __init__(self, database: Database, audit=None) -> None:
        self.database = database
        self.audit = audit

    def set(self, name: str, password: str, *, actor: str) -> None:
        """Set (or replace) the password of an existing identity."""
        if len(password) < MIN_LENGTH:
            raise ValidationError(f"a password needs at least {MIN_LENGTH} characters")
        IdentityStore(self.database).get(name)  # NotFoundError naming the identity
        with self.database.session() as session:
            row = session.get(PasswordRow, name)
            if row is None:
                session.add(PasswordRow(identity=name, hash=hash_password(password)))
            else:
                row.hash, row.updated_at = hash_password(password), utcnow()
        if self.audit is not None:
            self.audit.record(actor, "identity.password", name)

    def authenticate(self, name: str, password: str) -> Identity:
        """The active identity `name` when `password` is its own; one message otherwise."""
        refused = AuthenticationError("unknown identity or wrong password")
        identity = IdentityStore(self.database).find(name) if name else None
        with self.database.session() as session:
            row = session.get(PasswordRow, name) if identity is not None else None
            stored = row.hash if row is not None else _DUMMY
        if not check_password(password, stored) or row is None or identity is None:
            raise refused
        if identity.disabled:
            raise refused
        return identity
