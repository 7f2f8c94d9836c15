"""What commands share about identity: the `--as` options, the role check, audited stores."""

from __future__ import annotations

from typing import Any

import typer

from mloop.settings import get_settings

# Managing identities and credentials needs the admin or security role.
ADMIN_AS_OPTION = typer.Option(
    None, "--as", help="Act as this identity (admin or security) [MLOOP_USER]."
)


def authorized(as_user: str | None, action: str) -> str:
    """The actor of `action` (a `security.permissions` name), checked as its REST route is.

    An identity (`--as`, MLOOP_USER, MLOOP_API_KEY, MLOOP_TOKEN) must hold the action's role
    (else exit 8, as the route's 403); without one the actor is `local:<os user>`.
    """
    from mloop.security import permissions  # lazy: +0.4 s at CLI start-up
    from mloop.security.acting import authorize  # lazy: +0.4 s at CLI start-up

    return authorize(get_settings(), as_user, getattr(permissions, action))


def audited_store(store_class: type) -> tuple[Any, Any]:
    """(settings, store) for an identity store that records its changes in the audit log."""
    from mloop.governance.audit import audit_log  # lazy: +0.3 s at CLI start-up
    from mloop.store import open_database  # lazy: +0.3 s at CLI start-up

    settings = get_settings()
    return settings, store_class(open_database(settings), audit_log(settings))
