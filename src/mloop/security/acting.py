"""Who a CLI command acts as: `--as USER`, MLOOP_USER, MLOOP_API_KEY or MLOOP_TOKEN.

Every control-plane command calls `authorize` with its `permissions.Action`: the identity it
acts as must hold the role the REST route needs (the same `permit` check), and a bad key or
token is refused (exit 8). Without any identity the command is an operator action on the
platform database, recorded as `local:<os user>`. Approval actions need a real identity.
"""

from __future__ import annotations

import getpass

from mloop.errors import AuthenticationError, PermissionDeniedError
from mloop.security.identities import Identity, IdentityStore
from mloop.security.keys import KeyStore
from mloop.security.permissions import IDENTITY_MANAGE, Action, permit
from mloop.security.secrets import JWT_KEY_FILE, server_secret
from mloop.security.tokens import verify_token
from mloop.settings import Settings
from mloop.store import open_database

HINT = "pass --as USER, or set MLOOP_USER, MLOOP_API_KEY or MLOOP_TOKEN"
_FIX = "unset it, or use a key from `mloop keys create USER` (a token from `mloop token issue`)"


def resolve_identity(settings: Settings, as_user: str | None) -> Identity | None:
    """The identity named or proven by the CLI's options and settings, or None."""
    database = open_database(settings)
    name = as_user or settings.user
    if name:
        identity = IdentityStore(database).get(name)
    elif settings.api_key.get_secret_value():
        try:
            identity = KeyStore(database).authenticate(settings.api_key.get_secret_value())
        except AuthenticationError as exc:
            raise AuthenticationError(f"MLOOP_API_KEY refused: {exc.message}", hint=_FIX) from None
    elif settings.token.get_secret_value():
        try:
            claims = verify_token(
                settings.token.get_secret_value(),
                server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE),
            )
        except AuthenticationError as exc:
            raise AuthenticationError(f"MLOOP_TOKEN refused: {exc.message}", hint=_FIX) from None
        identity = IdentityStore(database).find(str(claims["sub"]))
        if identity is None:
            raise AuthenticationError(
                f"MLOOP_TOKEN names unknown identity '{claims['sub']}'", hint=_FIX
            )
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


def authorize(settings: Settings, as_user: str | None, action: Action) -> str:
    """The actor of `action`: an identity holding its role (else 403), or `local:<os user>`.

    The role is the one the action's REST route requires (`permissions`), checked by the same
    `permit`; a bad MLOOP_API_KEY or MLOOP_TOKEN is refused even for reads.
    """
    identity = resolve_identity(settings, as_user)
    if identity is None:
        return local_operator()
    permit(identity, action.role, str(action))
    return identity.name


def local_operator() -> str:
    """`local:<os user>`: who acts when a command runs without an identity."""
    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "local"


def operator(settings: Settings, as_user: str | None) -> str:
    """Actor of identity/key management: an admin or security identity, or `local:<user>`."""
    return authorize(settings, as_user, IDENTITY_MANAGE)
