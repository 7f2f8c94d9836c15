"""Python client for the mloop model server.

    with Client("http://127.0.0.1:8000") as client:
        client.predict({"tenure_months": 12, "plan": "basic"})

Error responses raise the MloopError subclass matching the status (422 ValidationError,
404 NotFoundError, 409 ConflictError, 413 PayloadTooLargeError, 503 ServiceUnavailableError,
anything else MloopError) with the server's detail and hint; a server that cannot be reached
raises ServiceUnavailableError naming the URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from mloop.errors import (
    ConflictError,
    MloopError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ValidationError,
)

__all__ = ["Client"]

_ERRORS: dict[int, type[MloopError]] = {
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


class Client:
    """A synchronous client for one model server."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def health(self) -> dict[str, Any]:
        """Liveness and whether a model is loaded."""
        return self._request("GET", "/health").json()

    def ready(self) -> dict[str, Any]:
        """Readiness; raises ServiceUnavailableError with the reason while not ready."""
        return self._request("GET", "/ready").json()

    def predict(self, features: dict[str, Any] | list[Any]) -> dict[str, Any]:
        """Predict one row (a dict by feature name, or a list in signature order)."""
        return self._request("POST", "/predict", json={"features": features}).json()

    def predict_batch(self, instances: list[dict[str, Any] | list[Any]]) -> dict[str, Any]:
        """Predict many rows in one request."""
        return self._request("POST", "/predict/batch", json={"instances": instances}).json()

    def model_info(self) -> dict[str, Any]:
        """Name, version, URI, flavor, features and classes of the served model."""
        return self._request("GET", "/model/info").json()

    def metrics(self) -> str:
        """The server's Prometheus metrics as text."""
        return self._request("GET", "/metrics").text

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServiceUnavailableError(
                f"{method} {self.url}{path} timed out: {exc}",
                hint="the server is busy or stuck; raise the client timeout or check the server",
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"cannot reach the mloop server at {self.url}: {exc}",
                hint="start it with `mloop serve MODEL_REF` or check the URL",
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response


def _error_from(response: httpx.Response) -> MloopError:
    """The MloopError for an error response, carrying the server's detail and hint."""
    error_class = _ERRORS.get(response.status_code, MloopError)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("detail" in body or "reason" in body):
        detail = str(body.get("detail") or body.get("reason"))
        hint = body.get("hint")
    else:
        detail = response.text.strip()[:200] or response.reason_phrase
        hint = None
    message = f"{detail} (HTTP {response.status_code})"
    error = error_class(message, hint=hint if isinstance(hint, str) else None)
    error.status_code = response.status_code  # type: ignore[attr-defined]
    return error
