"""Where the server may send outgoing webhooks (alert notifications): `MLOOP_WEBHOOK_ALLOW`.

The target's host is resolved and every address it resolves to is checked just before each
send. With an empty allow-list any public address may be called, never a private, loopback,
link-local, multicast, reserved or unspecified one (so a webhook cannot be pointed at the
server's own admin ports, the cloud metadata address 169.254.169.254 or the internal network).
With entries (host names, IP addresses or CIDRs) only the targets they name may be called.
Redirects are never followed by the senders, so a 3xx cannot move the call elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from mloop.errors import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValidationError(f"webhook host '{host}' does not resolve: {exc}") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _internal(address: Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _allowed(host: str, address: Address, allow: list[str]) -> bool:
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name that is not this one
    return False


def check_target(url: str, allow: list[str]) -> None:
    """Raise ValidationError unless `url` is an http(s) URL the allow-list lets the server call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"webhook URL must be http(s)://HOST/...: scheme {parts.scheme!r}")
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    entries = [entry for entry in allow if entry.strip()]
    for address in _addresses(host, port):
        if entries:
            if not _allowed(host, address, entries):
                raise ValidationError(
                    f"webhook host '{host}' ({address}) is not in MLOOP_WEBHOOK_ALLOW",
                    hint="add the host or its network to MLOOP_WEBHOOK_ALLOW (comma-separated)",
                )
        elif _internal(address):
            raise ValidationError(
                f"webhook host '{host}' resolves to the internal address {address}: refused",
                hint="allow it explicitly: MLOOP_WEBHOOK_ALLOW=HOST or a CIDR such as 10.0.0.0/8",
            )
