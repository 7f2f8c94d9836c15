"""The web console at `/ui/`: server-rendered pages over what the server already holds.

`install(app)` (called by `create_app`) adds `router` (every page, the static files and the
`/` redirect, all outside the OpenAPI schema), the security headers of every `/ui` answer
and the HTML error pages `/ui` paths get instead of the API's JSON errors.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from mloop.security.access import Role, requires
from mloop.serving.console import static
from mloop.serving.console.errors import install_errors
from mloop.serving.console.headers import ConsoleHeaders
from mloop.serving.console.pages import (
    approvals,
    audit,
    auth,
    deployments,
    home,
    jobs,
    models,
    monitoring,
)

# PUBLIC for the API's authenticator (rate limits still apply): the console checks its own
# session (web.current_user) and each action's role (web.acting).
router = APIRouter(include_in_schema=False, dependencies=[requires(Role.PUBLIC)])
router.include_router(static.router)
for _page in (home, auth, models, deployments, monitoring, approvals, audit, jobs):
    router.include_router(_page.router)


def install(app: FastAPI) -> None:
    """Mount the console on a server app (after its error handlers are installed)."""
    app.include_router(router, include_in_schema=False)
    app.add_middleware(ConsoleHeaders)
    install_errors(app)
