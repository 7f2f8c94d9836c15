"""Approval notifications: a JSON POST to `MLOOP_APPROVAL_WEBHOOK_URL` per event.

Sent synchronously with a short timeout; a failed delivery is logged and audited but never
undoes the approval action that triggered it.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from mloop.settings import Settings

log = logging.getLogger("mloop.governance")
TIMEOUT_SECONDS = 5.0


def notify(settings: Settings, audit: Any, event: str, request: Any) -> bool:
    """POST `{"event": ..., "request": {...}}`; True when the receiver answered 2xx."""
    url = settings.approval_webhook_url
    if not url:
        return False

    body = {"event": event, "request": request.to_dict()}
    try:
        response = httpx.post(url, json=body, timeout=TIMEOUT_SECONDS)
        ok = response.is_success
        problem = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, problem = False, f"{type(exc).__name__}: {exc}"
    if not ok:
        log.warning("approval webhook %s failed: %s", url, problem)
        audit.record(
            "mloop", "approval.notify_failed", f"request {request.id}", event=event, error=problem
        )
    return ok
