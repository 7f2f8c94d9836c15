"""Errors that mloop raises on purpose.

Each class carries the HTTP status the server answers with and the exit code the CLI ends with,
so one exception means the same thing on both surfaces. Anything not in this tree is a bug.

    MloopError                      500  exit 1
    ├── UserError                   400  exit 2   bad input from a person or a client
    │   ├── ConfigError             400  exit 2   a settings value or config file is wrong
    │   ├── ValidationError         422  exit 2   a payload or data file does not fit the schema
    │   ├── NotFoundError           404  exit 3   unknown model, version, alias, stage, id
    │   ├── ConflictError           409  exit 4   the request contradicts the current state
    │   └── PayloadTooLargeError    413  exit 2   a request body above the configured size limit
    ├── CriteriaNotMetError         422  exit 5   a trained model failed its registration criteria
    ├── ServiceUnavailableError     503  exit 6   a model or a backing service is not ready
    ├── DeadlineExceededError       504  exit 6   a prediction missed its deadline
    ├── MissingExtraError           500  exit 7   an optional dependency is not installed
    ├── ModelIntegrityError         409  exit 10  a model's files differ from its recorded digest
    └── SecurityError               401  exit 8   (base of the security layer's errors)
        ├── AuthenticationError     401  exit 8   missing, bad, expired or tampered credentials
        ├── PermissionDeniedError   403  exit 8   the identity lacks the role the action needs
        └── RateLimitedError        429  exit 9   over the identity's request budget

Security errors carry `headers` for the response (`WWW-Authenticate`, `Retry-After`).
"""

from __future__ import annotations

import importlib


class MloopError(Exception):
    """Base of every error mloop raises on purpose."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        """The JSON body the server sends for this error."""
        body = {"error": type(self).__name__, "detail": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class UserError(MloopError):
    """The input is wrong; fixing the input fixes the error."""

    http_status = 400
    exit_code = 2


class ConfigError(UserError):
    """A settings value or a config file is wrong."""


class ValidationError(UserError):
    """A payload or a data file does not fit the expected schema."""

    http_status = 422


class NotFoundError(UserError):
    """A named thing (model, version, alias, stage, id) does not exist."""

    http_status = 404
    exit_code = 3


class ConflictError(UserError):
    """The request contradicts the current state (e.g. nothing to roll back to)."""

    http_status = 409
    exit_code = 4


class PayloadTooLargeError(UserError):
    """A request body or a batch is above the configured limit."""

    http_status = 413


class CriteriaNotMetError(MloopError):
    """A trained model did not pass the registration criteria of its config."""

    http_status = 422
    exit_code = 5


class ServiceUnavailableError(MloopError):
    """A model or a backing service is not ready (yet)."""

    http_status = 503
    exit_code = 6


class DeadlineExceededError(MloopError):
    """A prediction did not finish within its deadline (the server answers 504)."""

    http_status = 504
    exit_code = 6


class MissingExtraError(MloopError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 7

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed",
            hint=f"pip install 'mloop[{extra}]'",
        )


class ModelIntegrityError(MloopError):
    """A model version's files do not match the content digest recorded at registration.

    Carries `name`, `version`, `expected` and `found` (hex sha256) for the audit record.
    """

    http_status = 409
    exit_code = 10

    def __init__(self, name: str, version: str, *, expected: str, found: str) -> None:
        super().__init__(
            f"model {name} version {version} was changed after registration: its files have "
            f"sha256 {found}, the registry recorded {expected}",
            hint="re-register the model from its training run, or restore the artifact files",
        )
        self.name, self.version, self.expected, self.found = name, version, expected, found


class SecurityError(MloopError):
    """Base of the security layer's errors; carries response headers."""

    http_status = 401
    exit_code = 8
    headers: dict[str, str] = {}


class AuthenticationError(SecurityError):
    """No credentials, or credentials that do not prove an active identity."""

    http_status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="mloop"'}


class PermissionDeniedError(SecurityError):
    """The identity is known but does not hold the role the action needs."""

    http_status = 403
    headers: dict[str, str] = {}


class RateLimitedError(SecurityError):
    """Too many requests for this identity; retry after `retry_after` seconds."""

    http_status = 429
    exit_code = 9

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, hint=f"retry after {retry_after:.1f}s")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


def require(module: str, extra: str):
    """Import an optional module, or raise MissingExtraError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra) from exc
