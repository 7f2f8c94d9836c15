"""Whether the HTTP API asks for credentials: MLOOP_AUTH `on`, `off`, or `auto` (on when the
server binds an address other machines can reach).

Its own module so that `mloop serve`'s supervisor, which only prints the mode before starting
its workers, does not import the authenticator's stack (`security.auth`: Starlette, the key
and identity stores); each worker imports that (benchmarks/startup.py).
"""

from __future__ import annotations

import ipaddress

from mloop.settings import Settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings, host: str | None = None) -> bool:
    """`on`, `off`, or for `auto`: on when the server binds a non-loopback address."""
    if settings.auth == "on":
        return True
    if settings.auth == "off":
        return False
    return not is_loopback(host if host is not None else settings.host)
