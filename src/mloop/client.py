"""Python client for the mloop model server.

    with Client("http://127.0.0.1:8000") as client:
        client.predict({"tenure_months": 12, "plan": "basic"})

Credentials, when the server has auth on: `api_key=` (sent as `X-API-Key`) or `token=` (a JWT
sent as `Authorization: Bearer`), defaulting to the MLOOP_API_KEY / MLOOP_TOKEN environment
variables.

Error responses raise the MloopError subclass matching the status (401 AuthenticationError,
403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 413 PayloadTooLargeError,
422 ValidationError, 429 RateLimitedError, 503 ServiceUnavailableError, anything else
MloopError) with the server's detail and hint; a server that cannot be reached raises
ServiceUnavailableError naming the URL.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import quote

import httpx

from mloop.errors import (
    AuthenticationError,
    ConflictError,
    MloopError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationError,
)

__all__ = ["Client"]

_ERRORS: dict[int, type[MloopError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


_FINISHED = {"succeeded", "failed", "cancelled"}


class Client:
    """A synchronous client for one model server."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        api_key: str | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        api_key = api_key or os.environ.get("MLOOP_API_KEY")
        token = token or os.environ.get("MLOOP_TOKEN")
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif api_key:
            headers["X-API-Key"] = api_key
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def health(self) -> dict[str, Any]:
        """Liveness and whether a model is loaded."""
        return self._request("GET", "/health").json()

    def ready(self) -> dict[str, Any]:
        """Readiness; raises ServiceUnavailableError with the reason while not ready."""
        return self._request("GET", "/ready").json()

    def predict(
        self,
        features: dict[str, Any] | list[Any],
        *,
        deployment: str | None = None,
        user_id: str | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Predict one row (a dict by feature name, or a list in signature order).

        With `deployment` the row goes through that deployment: `user_id` keeps a user on one
        variant (sent as `X-User-Id`), `variant` forces one (sent as `X-Variant`, the default
        force header); the answer names the `deployment` and `variant`.
        """
        return self._request(
            "POST",
            _predict_path(deployment),
            json={"features": features},
            headers=_routing_headers(user_id, variant),
        ).json()

    def predict_batch(
        self,
        instances: list[dict[str, Any] | list[Any]],
        *,
        deployment: str | None = None,
        user_id: str | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Predict many rows in one request (through `deployment`: see `predict`)."""
        return self._request(
            "POST",
            _predict_path(deployment) + "/batch",
            json={"instances": instances},
            headers=_routing_headers(user_id, variant),
        ).json()

    def deployment(self, name: str) -> dict[str, Any]:
        """A deployment's status on this server: variants, versions, shares and live counts."""
        return self._request("GET", f"/deployments/{quote(name, safe='')}").json()

    def predict_async(self, instances: list[dict[str, Any] | list[Any]]) -> dict[str, Any]:
        """Queue rows for prediction: `{job_id, status, status_url}` (the job is durable)."""
        return self._request("POST", "/predict/async", json={"instances": instances}).json()

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's status, progress and, once it succeeded, its result."""
        return self._request("GET", f"/jobs/{job_id}").json()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (ConflictError once it has finished)."""
        return self._request("DELETE", f"/jobs/{job_id}").json()

    def wait_for_job(
        self, job_id: str, *, timeout: float = 60.0, interval: float = 0.2
    ) -> dict[str, Any]:
        """Poll a job until it succeeded, failed or was cancelled; ServiceUnavailable on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.get("status") in _FINISHED:
                return job
            if time.monotonic() >= deadline:
                raise ServiceUnavailableError(
                    f"job {job_id} is still {job.get('status')} after {timeout:g}s",
                    hint="raise the timeout, or check the workers (`mloop jobs show ID`)",
                )
            time.sleep(interval)

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


def _predict_path(deployment: str | None) -> str:
    if deployment is None:
        return "/predict"
    return f"/deployments/{quote(deployment, safe='')}/predict"


def _routing_headers(user_id: str | None, variant: str | None) -> dict[str, str]:
    headers = {}
    if user_id is not None:
        headers["X-User-Id"] = str(user_id)
    if variant is not None:
        headers["X-Variant"] = variant
    return headers


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
    if response.status_code == 429:
        retry_after = float(response.headers.get("Retry-After", "1") or 1)
        return RateLimitedError(message, retry_after=retry_after)
    error = error_class(message, hint=hint if isinstance(hint, str) else None)
    error.status_code = response.status_code  # type: ignore[attr-defined]
    return error
