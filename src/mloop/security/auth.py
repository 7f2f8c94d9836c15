"""The authenticator a server installs on `app.state.mloop_auth` (the switch that decides
whether it is on is `security.mode.auth_enabled`, re-exported here).

Credentials: an API key in `X-API-Key` (or `Authorization: Bearer mlk_...`), or a JWT in
`Authorization: Bearer`. Missing or bad credentials answer 401, a role the identity lacks 403,
a spent rate budget 429 with Retry-After. Checks of a credential are cached for a few seconds,
so a revoked key or a disabled identity stops working within `CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mloop.errors import AuthenticationError, RateLimitedError
from mloop.security.access import Role
from mloop.security.identities import Identity, IdentityStore
from mloop.security.keys import PREFIX, KeyStore
from mloop.security.mode import auth_enabled as auth_enabled
from mloop.security.mode import is_loopback as is_loopback
from mloop.security.permissions import permit
from mloop.security.ratelimit import make_limiter
from mloop.security.secrets import JWT_KEY_FILE, server_secret
from mloop.security.tokens import verify_token
from mloop.settings import Settings
from mloop.store import open_database

CACHE_SECONDS = 5.0
WORKERS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the folder `mloop serve --workers N` shares
KEY_MARK = "\0key:"  # marks an X-API-Key value that does not look like one


def credentials(headers: Any) -> str | None:
    """The API key or token a request carries, or None (an X-API-Key is always a key)."""
    key = headers.get("x-api-key")
    if key:
        key = key.strip()
        return key if key.startswith(PREFIX) else KEY_MARK + key
    authorization = headers.get("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if authorization:
        raise AuthenticationError(
            "unsupported Authorization header: use `Authorization: Bearer <key or token>`"
        )
    return None


class Authenticator:
    """Resolves credentials to identities, checks roles and rate limits per identity."""

    def __init__(self, settings: Settings, *, enabled: bool) -> None:
        self.settings = settings
        self.enabled = enabled
        self.database = open_database(settings)
        # The workers of one server share their buckets through their common folder.
        self.limiter = make_limiter(
            settings.rate_limit,
            settings.rate_limit_burst,
            settings.rate_limit_url,
            shared_dir=os.environ.get(WORKERS_DIR_ENV),
        )
        self._secret: bytes | None = None
        self._cache: dict[str, tuple[float, Identity | AuthenticationError]] = {}
        self._lock = threading.Lock()

    @property
    def jwt_secret(self) -> bytes:
        if self._secret is None:
            self._secret = server_secret(self.settings.jwt_secret, self.settings.home, JWT_KEY_FILE)
        return self._secret

    async def authorize(self, request: Request, role: Role) -> Identity | None:
        """The caller's identity when it may use a route needing `role` (raises otherwise)."""
        if role is Role.PUBLIC:
            if request.url.path != "/metrics" or self.settings.metrics_public or not self.enabled:
                return None
            role = Role.VIEWER
        identity: Identity | None = None
        if self.enabled:
            token = credentials(request.headers)
            if token is None:
                raise AuthenticationError(
                    f"{request.method} {request.url.path} needs credentials: send `X-API-Key: "
                    "<key>` or `Authorization: Bearer <key or token>`",
                    hint="create a key with `mloop keys create USER`",
                )
            identity = await run_in_threadpool(self.identify, token)
            request.state.mloop_identity = identity.name
            permit(identity, role, f"{request.method} {request.url.path}")
        if self.limiter is not None:
            client = request.client.host if request.client else "unknown"
            key = f"id:{identity.name}" if identity else f"ip:{client}"
            wait = await self.limiter.take(key)
            if wait > 0:
                who = f"identity '{identity.name}'" if identity else f"client {client}"
                raise RateLimitedError(
                    f"rate limit exceeded for {who}: {self.limiter.rate:g} requests/s, "
                    f"burst {self.limiter.burst}",
                    retry_after=wait,
                )
        return identity

    def identify(self, token: str) -> Identity:
        """The active identity behind an API key or a JWT (cached for CACHE_SECONDS)."""
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            if isinstance(hit[1], AuthenticationError):
                raise hit[1]
            return hit[1]
        try:
            result: Identity | AuthenticationError = self._identify(token)
        except AuthenticationError as exc:
            result = exc
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (now, result)
        if isinstance(result, AuthenticationError):
            raise result
        return result

    def _identify(self, token: str) -> Identity:
        if token.startswith(PREFIX) or token.startswith(KEY_MARK):
            return KeyStore(self.database).authenticate(token.removeprefix(KEY_MARK))
        claims = verify_token(token, self.jwt_secret)
        identity = IdentityStore(self.database).find(str(claims["sub"]))
        if identity is None:
            raise AuthenticationError(f"token names unknown identity '{claims['sub']}'")
        if identity.disabled:
            raise AuthenticationError(f"identity '{identity.name}' is disabled")
        return identity

    async def close(self) -> None:
        close = getattr(self.limiter, "close", None)
        if close is not None:
            await close()


def caller(request: Request) -> str | None:
    """The authenticated identity name of this request (None with auth off)."""
    return getattr(request.state, "mloop_identity", None)
