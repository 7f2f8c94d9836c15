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
    └── MissingExtraError           500  exit 7   an optional dependency is not installed
"""

from __future__ import annotations


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


class MissingExtraError(MloopError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 7

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed",
            hint=f"pip install 'mloop[{extra}]'",
        )


def require(module: str, extra: str):
    """Import an optional module, or raise MissingExtraError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra) from exc
