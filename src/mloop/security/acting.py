"""Who a CLI command acts as: `--as USER`, MLOOP_USER, MLOOP_API_KEY or MLOOP_TOKEN.

Approval actions need a real identity (roles are checked). Identity and key management from
the CLI is an operator action on the platform database: without an identity it is recorded
as `local:<os user>`; with one, that identity must hold `admin` or `security`.
"""

from __future__ import annotations

import getpass

from mloop.errors import PermissionDeniedError
from mloop.security.identities import Identity, IdentityStore
from mloop.security.keys import KeyStore
from mloop.security.secrets import JWT_KEY_FILE, server_secret
from mloop.security.tokens import verify_token
from mloop.settings import Settings
from mloop.store import open_database

HINT = "pass --as USER, or set MLOOP_USER, MLOOP_API_KEY or MLOOP_TOKEN"


def resolve_identity(settings: Settings, as_user: str | None) -> Identity | None:
    """The identity named or proven by the CLI's options and settings, or None."""
    database = open_database(settings)
    name = as_user or settings.user
    if name:
        identity = IdentityStore(database).get(name)
    elif settings.api_key.get_secret_value():
        identity = KeyStore(database).authenticate(settings.api_key.get_secret_value())
    elif settings.token.get_secret_value():
        claims = verify_token(
            settings.token.get_secret_value(),
            server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE),
        )
        identity = IdentityStore(database).get(str(claims["sub"]))
    else:
        return None
    if identity.disabled:
        raise PermissionDeniedError(f"identity '{identity.name}' is disabled")
    return identity


def acting_identity(settings: Settings, as_user: str | None) -> str:
    """The name of the identity this command acts as; PermissionDeniedError without one."""
    identity = resolve_identity(settings, as_user)
    if identity is None:
        raise PermissionDeniedError("this command needs an identity", hint=HINT)
    return identity.name


def operator(settings: Settings, as_user: str | None) -> str:
    """Actor of identity/key management: an admin or security identity, or `local:<user>`."""
    identity = resolve_identity(settings, as_user)
    if identity is None:
        try:
            return f"local:{getpass.getuser()}"
        except Exception:  # no user name in this environment
            return "local"
    if not (identity.holds("admin") or identity.holds("security")):
        raise PermissionDeniedError(
            f"'{identity.name}' may not manage identities or keys: it needs admin or security"
        )
    return identity.name
