"""Approval notifications: a JSON POST to `MLOOP_APPROVAL_WEBHOOK_URL` per event.

Sent synchronously with a short timeout, only to hosts `MLOOP_WEBHOOK_ALLOW` lets the server
call, connecting to the address that was checked (`security.egress`); a failed or refused
delivery is logged (host only: the URL may carry a token) and audited, but never undoes
the approval action that triggered it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from mloop.errors import ValidationError
from mloop.security.egress import post_json
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
        # MLOOP_WEBHOOK_ALLOW, as for alert webhooks; sent to the checked address, no redirects
        response = post_json(url, settings.webhook_allow, body, timeout=TIMEOUT_SECONDS)
        ok = response.is_success
        problem = f"HTTP {response.status_code}"
    except ValidationError as exc:
        ok, problem = False, f"refused: {exc.message}"
    except httpx.HTTPError as exc:
        ok, problem = False, type(exc).__name__  # its text may carry the URL and its token
    if not ok:
        log.warning("approval webhook to %s failed: %s", urlsplit(url).hostname, problem)
        audit.record(
            "mloop", "approval.notify_failed", f"request {request.id}", event=event, error=problem
        )
    return ok
