"""The security headers of every console answer, and the flash cookie's set/clear.

A pure ASGI middleware: it sees every `/ui` response (pages, redirects, error pages, static
files) and the `/` redirect, so no handler can forget the headers.
"""

from __future__ import annotations

from typing import Any

from mloop.serving.console.web import FLASH_COOKIE, encode_flash
from mloop.serving.state import ServingState

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_COOKIE = "; Path=/ui; HttpOnly; SameSite=Strict"


def is_console(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


class ConsoleHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_console(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + HEADERS
                if not scope["path"].startswith("/ui/static/"):
                    headers.append((b"cache-control", b"no-store"))
                headers += _flash_cookie(scope)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _flash_cookie(scope: dict) -> list[tuple[bytes, bytes]]:
    """Set-Cookie for a flash written by this request, or clearing one it displayed."""
    values = scope["state"]
    out = values.get("console_flash_out")
    if out is not None:
        mloop: ServingState = scope["app"].mloop
        value = encode_flash(mloop.settings, out)
        return [(b"set-cookie", f"{FLASH_COOKIE}={value}{_COOKIE}".encode())]
    if values.get("console_flash_read"):
        return [(b"set-cookie", f"{FLASH_COOKIE}=; Max-Age=0{_COOKIE}".encode())]
    return []
