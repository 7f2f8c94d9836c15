"""Everything the security and audit layer adds to a server app, behind three calls.

    security = SecurityLayer(settings)
    security.install(app)        # authenticator, error handler, audit middleware
    security.start(app) / await security.stop(app)   # in the lifespan

The authenticator is installed when auth is on (see `auth_enabled`) or a rate limit is set;
with neither, requests pass untouched. API calls are audited when MLOOP_AUDIT_API_CALLS is on
(answered prediction calls unless MLOOP_AUDIT_PREDICTION_CALLS is off).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import SecurityError
from mloop.security.auth import Authenticator, auth_enabled
from mloop.settings import Settings

log = logging.getLogger("mloop.security")


async def _security_error(_request: Request, exc: Exception) -> Response:
    from mloop.serving.handlers import json_response

    assert isinstance(exc, SecurityError)
    return json_response(exc.to_dict(), exc.http_status, headers=dict(exc.headers))


class SecurityLayer:
    """Authentication, rate limits and API-call auditing for one server app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = auth_enabled(settings)

    def install(self, app: FastAPI) -> None:
        app.add_exception_handler(SecurityError, _security_error)
        if self.enabled or self.settings.rate_limit > 0:
            app.state.mloop_auth = Authenticator(self.settings, enabled=self.enabled)
        if self.settings.audit_api_calls:
            from mloop.governance.audit_writer import AuditMiddleware

            app.add_middleware(
                AuditMiddleware, answered_predictions=self.settings.audit_prediction_calls
            )

    def start(self, app: FastAPI) -> None:
        if self.settings.audit_api_calls:
            from mloop.governance.audit import audit_log
            from mloop.governance.audit_writer import AuditWriter

            app.state.mloop_audit = AuditWriter(audit_log(self.settings))
        if self.enabled:
            log.info("authentication is on: API routes need an API key or a token")

    async def stop(self, app: FastAPI) -> None:
        writer = getattr(app.state, "mloop_audit", None)
        if writer is not None:
            app.state.mloop_audit = None
            writer.close()
        auth = getattr(app.state, "mloop_auth", None)
        if auth is not None:
            await auth.close()
