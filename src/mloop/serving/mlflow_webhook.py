"""MLflow registry webhook deliveries: check their signature, read which model they are about.

MLflow 3 signs a delivery with HMAC-SHA256 over `"{delivery_id}.{timestamp}.{body}"` and sends
`X-MLflow-Signature: v1,<base64>`, `X-MLflow-Timestamp` (Unix seconds) and
`X-MLflow-Delivery-Id`. The MLflow server cannot send mloop credentials, so on
`POST /models/refresh` a delivery whose signature verifies with `MLOOP_MODEL_WEBHOOK_SECRET`
stands in for the `ml_lead` role check (`SignedOrRole`); a signed delivery that does not verify
is refused (401) even if it also carries credentials. All it can do is ask the server to
re-read the registry, so a replay within the 5-minute window changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from mloop.errors import AuthenticationError, ValidationError
from mloop.security.access import RoleCheck
from mloop.serving.body import read_body

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
MAX_AGE_SECONDS = 300  # older (or that far in the future) deliveries are refused as replays
WEBHOOK_IDENTITY = "mlflow-webhook"  # who the audit trail records for a signed delivery
MAX_BODY_BYTES = 64 * 1024  # deliveries are a few hundred bytes


def signature(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    """MLflow's signature of one delivery: `v1,<base64 HMAC-SHA256>`."""
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify_delivery(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Raise AuthenticationError unless `body` is a fresh delivery signed with `secret`."""
    given = headers.get(SIGNATURE_HEADER)
    stamp = headers.get(TIMESTAMP_HEADER)
    delivery_id = headers.get(DELIVERY_HEADER)
    if not given or not stamp or not delivery_id:
        raise AuthenticationError(
            f"an MLflow webhook delivery needs the headers {SIGNATURE_HEADER}, "
            f"{TIMESTAMP_HEADER} and {DELIVERY_HEADER}"
        )
    try:
        sent = int(stamp)
    except ValueError:
        raise AuthenticationError(
            f"{TIMESTAMP_HEADER} must be Unix seconds, got {stamp!r}"
        ) from None
    age = (time.time() if now is None else now) - sent
    if abs(age) > MAX_AGE_SECONDS:
        raise AuthenticationError(
            f"MLflow webhook delivery is stale: signed {age:.0f}s ago, more than "
            f"{MAX_AGE_SECONDS}s (a replay, or the clocks disagree)"
        )
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationError("MLflow webhook delivery body is not UTF-8") from None
    expected = signature(secret, delivery_id, stamp, payload)
    if not any(hmac.compare_digest(expected, part) for part in given.split()):
        raise AuthenticationError(
            f"MLflow webhook signature does not match ({SIGNATURE_HEADER})",
            hint="the webhook's secret must equal MLOOP_MODEL_WEBHOOK_SECRET",
        )


class SignedOrRole(RoleCheck):
    """The role check, or a verified MLflow webhook signature in its place.

    Used as `Depends(SignedOrRole(Role.ML_LEAD))`: the route table (and its test) still
    declares the role. Without a configured secret the signature headers are ignored.
    """

    async def __call__(self, request: Request) -> Any:
        secret = request.app.state.mloop.settings.model_webhook_secret.get_secret_value()
        if secret and SIGNATURE_HEADER in request.headers:
            verify_delivery(secret, request.headers, await body_of(request))
            request.state.mloop_identity = WEBHOOK_IDENTITY
            request.state.mloop_webhook = True
            return None
        return await super().__call__(request)


async def body_of(request: Request) -> bytes:
    """The request body (at most MAX_BODY_BYTES), read once for the check and the route."""
    body = getattr(request.state, "mloop_body", None)
    if body is None:
        body = request.state.mloop_body = await read_body(request, MAX_BODY_BYTES)
    return body


def model_of(body: bytes) -> str | None:
    """The registered model a refresh is about: None (every model) for an empty body.

    Accepts an MLflow delivery (`{"entity", "action", "data": {"name", ...}}`) or
    `{"model": NAME}`; anything else is a ValidationError.
    """
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"the body is not JSON: {exc}") from None
    if isinstance(value, dict) and isinstance(value.get("data"), dict) and "entity" in value:
        name = value["data"].get("name")  # MLflow's delivery: model_version_alias.created, ...
        return name if isinstance(name, str) and name else None
    if isinstance(value, dict) and set(value) <= {"model"}:
        name = value.get("model")
        if name is None or (isinstance(name, str) and name.strip()):
            return name.strip() if name else None
    raise ValidationError(
        'expected an empty body, {"model": NAME}, or an MLflow webhook delivery',
        hint='POST /models/refresh with {"model": "churn"} refreshes the references of churn',
    )
