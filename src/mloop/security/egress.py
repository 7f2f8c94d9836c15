"""Where the server may send outgoing webhooks (alerts, approvals): `MLOOP_WEBHOOK_ALLOW`.

The target's host is resolved once per send and every address it resolves to is checked. With
an empty allow-list any public address may be called, never a private, loopback, link-local,
multicast, reserved or unspecified one (so a webhook cannot be pointed at the server's own admin
ports, the cloud metadata address 169.254.169.254 or the internal network). With entries (host
names, IP addresses or CIDRs) only the targets they name may be called.

The send then connects to a checked address itself (`post_json`): the URL's host is replaced by
the address, the `Host` header and, for https, the TLS server name (SNI, and so the certificate
check) stay the host name. No second DNS lookup happens between the check and the connection,
so a DNS answer that changes in between (DNS rebinding) cannot move the call to an address the
check never saw. Redirects are never followed, so a 3xx cannot move it either.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from mloop.errors import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    """A webhook URL whose host resolved to `addresses`, every one of them checked."""

    url: str
    host: str
    port: int
    addresses: tuple[Address, ...]

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def host_header(self) -> str:
        """The `Host` header the URL implies (the port only when not the scheme's default)."""
        name = _bracketed(self.host)
        default = DEFAULT_PORTS["https" if self.https else "http"]
        return name if self.port == default else f"{name}:{self.port}"

    def url_for(self, address: Address) -> str:
        """The URL with its host replaced by `address` (user info, path and query kept)."""
        parts = urlsplit(self.url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{_bracketed(str(address))}:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc}" if userinfo else netloc))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _addresses(host: str, port: int) -> tuple[Address, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValidationError(f"webhook host '{host}' does not resolve: {exc}") from exc
    found = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return tuple(dict.fromkeys(found))  # in the resolver's order, each once


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


def check_target(url: str, allow: list[str]) -> Target:
    """The checked target of `url`; ValidationError unless the allow-list admits every address
    its host resolves to (now: call `post_json`, which connects to these very addresses)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValidationError(f"webhook URL must be http(s)://HOST/...: scheme {parts.scheme!r}")
    host = parts.hostname.lower()
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValidationError(f"webhook URL has a bad port: {exc}") from None
    entries = [entry for entry in allow if entry.strip()]
    addresses = _addresses(host, port)
    for address in addresses:
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
    return Target(url, host, port, addresses)


def send_json(
    target: Target, body: Any, *, timeout: float, verify: ssl.SSLContext | bool = True
) -> httpx.Response:
    """POST `body` to the first checked address of `target` that accepts a connection.

    `verify`: TLS verification as httpx takes it (the certificate must name the target's host).
    """
    headers = {"Host": target.host_header()}
    extensions = {"sni_hostname": target.host} if target.https else {}
    failure: httpx.ConnectError | None = None
    with httpx.Client(timeout=timeout, follow_redirects=False, verify=verify) as client:
        for address in target.addresses:
            try:
                return client.post(
                    target.url_for(address), json=body, headers=headers, extensions=extensions
                )
            except httpx.ConnectError as exc:  # e.g. `localhost` is ::1 too, served on v4 only
                failure = exc
    assert failure is not None  # getaddrinfo answers at least one address or raises
    raise failure


def post_json(
    url: str,
    allow: list[str],
    body: Any,
    *,
    timeout: float,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """Check `url` against `allow` (ValidationError when refused), then POST `body` to the
    checked address, never to a second DNS answer (httpx.HTTPError when the send fails)."""
    return send_json(check_target(url, allow), body, timeout=timeout, verify=verify)
