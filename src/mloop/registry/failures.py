"""MLflow failures as mloop errors: what every registry call is wrapped in.

RESOURCE_DOES_NOT_EXIST becomes NotFoundError (404), INVALID_PARAMETER_VALUE ValidationError
(422), anything else (a database locked, a server down) ServiceUnavailableError (503) naming
the store with its credentials hidden. No MLflow exception leaves the registry layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from mloop.errors import MloopError, NotFoundError, ServiceUnavailableError, ValidationError


@contextmanager
def mlflow_failures(tracking_uri: str, doing: str) -> Iterator[None]:
    """Translate MLflow (and transport) exceptions raised while `doing` into MloopErrors."""
    # lazy: mlflow +1.2 s to import; the server starts without it
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MloopError:
        raise
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"{doing}: {exc.message}") from exc
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            raise ValidationError(f"{doing}: {exc.message}") from exc
        raise ServiceUnavailableError(
            f"the model registry at {safe_uri(tracking_uri)} failed while {doing}: {exc.message}"
        ) from exc
    except Exception as exc:  # connection refused, database locked, unwritable path...
        raise ServiceUnavailableError(
            f"the model registry at {safe_uri(tracking_uri)} failed "
            f"while {doing}: {type(exc).__name__}: {exc}",
            hint="check MLOOP_TRACKING_URI (see `mloop config`)",
        ) from exc


def safe_uri(uri: str) -> str:
    """The URI with any `user:password@` credentials hidden."""
    return re.sub(r"//[^/@]*@", "//***@", uri)
