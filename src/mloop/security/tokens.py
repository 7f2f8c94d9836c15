"""JWT bearer tokens (HS256, PyJWT): `sub` names the identity, `exp` is always enforced.

Roles are not copied into the token: they are read from the identity at each check, so
disabling an identity or changing its roles takes effect for tokens already issued.
"""

from __future__ import annotations

import secrets
import time

from mloop.errors import AuthenticationError

ISSUER = "mloop"
ALGORITHM = "HS256"


def issue_token(identity: str, secret: bytes, ttl_seconds: int, *, now: float | None = None) -> str:
    """A signed token for `identity` that expires `ttl_seconds` from now."""
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": identity,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
        "jti": secrets.token_hex(8),
    }
    import jwt  # lazy: PyJWT +90 ms per server worker; only a server with auth on verifies tokens

    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: bytes) -> dict:
    """The claims of a valid token; AuthenticationError for expired, tampered or malformed."""
    import jwt  # lazy: see issue_token

    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError(
            "token expired", hint="issue a new one: mloop token issue USER"
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthenticationError(
            "token signature is invalid: it was tampered with or signed with another secret"
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthenticationError(f"token is missing the claim {exc.claim!r}") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError(f"invalid token: {exc}") from exc
