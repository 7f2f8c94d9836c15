"""Everything the security and audit layer adds to a server app, behind three calls.

    security = SecurityLayer(settings)
    security.install(app, state)  # authenticator, error handler, audit middleware
    security.start(state) / await security.stop(state)   # in the lifespan

The authenticator is installed when auth is on (see `auth_enabled`) or a rate limit is set;
with neither, requests pass untouched. API calls are audited when MLOOP_AUDIT_API_CALLS is on
(answered prediction calls unless MLOOP_AUDIT_PREDICTION_CALLS is off).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import SecurityError
from mloop.governance.audit import audit_log
from mloop.governance.audit_writer import AuditMiddleware, AuditWriter
from mloop.security.auth import Authenticator, auth_enabled
from mloop.serving.handlers import json_response, request_id
from mloop.settings import Settings
from mloop.spool import spool_directory

if TYPE_CHECKING:  # serving.state imports this layer's neighbours; typed only
    from mloop.serving.state import ServingState

log = logging.getLogger("mloop.security")


async def _security_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SecurityError)
    body = {**exc.to_dict(), "request_id": request_id(request)}
    return json_response(body, exc.http_status, headers=dict(exc.headers))


class SecurityLayer:
    """Authentication, rate limits and API-call auditing for one server app."""

    def __init__(self, settings: Settings, audit_writer: AuditWriter | None = None) -> None:
        """`audit_writer`: the owner's (mloop.platform), left open at stop; default: one of
        this layer's own, started and closed with the app."""
        self.settings = settings
        self.enabled = auth_enabled(settings)
        self.audit_writer = audit_writer
        self._owns_writer = False

    def install(self, app: FastAPI, state: ServingState) -> None:
        """The error handler, the authenticator (on `state.auth`) and the audit middleware."""
        app.add_exception_handler(SecurityError, _security_error)
        if self.enabled or self.settings.rate_limit > 0:
            # also on app.state: `security.access.requires` finds it there
            state.auth = app.state.mloop_auth = Authenticator(self.settings, enabled=self.enabled)
        if self.settings.audit_api_calls:
            app.add_middleware(
                AuditMiddleware,
                answered_predictions=self.settings.audit_prediction_calls,
                writer=lambda: state.audit,
            )

    def start(self, state: ServingState) -> None:
        if self.settings.audit_api_calls:
            if self.audit_writer is None:
                chain = audit_log(self.settings)
                spool = spool_directory(self.settings.home, chain.database.url, "audit")
                self.audit_writer, self._owns_writer = AuditWriter(chain, spool_dir=spool), True
            state.audit = self.audit_writer
        if self.enabled:
            log.info("authentication is on: API routes need an API key or a token")

    async def stop(self, state: ServingState) -> None:
        writer, state.audit = state.audit, None
        if writer is not None and self._owns_writer:
            self.audit_writer, self._owns_writer = None, False
            writer.close()
        elif writer is not None:
            writer.flush()  # the owner closes it; this app's calls are written by now
        if state.auth is not None:
            await state.auth.close()
