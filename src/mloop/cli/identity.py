"""What the identity commands (users, keys, token) share: the `--as` option and their stores."""

from __future__ import annotations

from typing import Any

import typer

from mloop.settings import get_settings

# Managing identities and credentials needs the admin or security role.
ADMIN_AS_OPTION = typer.Option(
    None, "--as", help="Act as this identity (admin or security) [MLOOP_USER]."
)


def audited_store(store_class: type) -> tuple[Any, Any]:
    """(settings, store) for an identity store that records its changes in the audit log."""
    from mloop.governance.audit import audit_log  # lazy: +0.3 s at CLI start-up
    from mloop.store import open_database  # lazy: +0.3 s at CLI start-up

    settings = get_settings()
    return settings, store_class(open_database(settings), audit_log(settings))
