"""The toolkit every console page uses: rendering, the logged-in user, actions, flashes, charts.

    @router.get("/ui/things")
    async def things(request: Request, user: ConsoleUser = Depends(current_user)):
        return render(request, "things.html", {"rows": await run_in_threadpool(load, ...)})

    @router.post("/ui/things/{name}/delete")
    async def delete(request: Request, name: str, user=Depends(acting(THING_DELETE))):
        form = await form_data(request)          # the posted fields (CSRF already checked)
        ...service call with actor=user.name...
        flash(request, f"deleted {name}")
        return see_other(f"/ui/things")

Templates are Jinja2 with autoescape on, extending `base.html` (shared markup: the macros of
`_macros.html`); every page gets `user`, `csrf_token`, `nav` (the sections the user's roles
may open) and `flashes`. Charts: `{{ chart("id", figure) }}` in a template (or
`chart(...)` in Python) embeds the Plotly figure as JSON data (`<script type=
"application/json">`, no code: allowed by the CSP) that `static/console.js` draws.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
import orjson
from fastapi import Depends
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from mloop import __version__
from mloop.errors import MloopError, PayloadTooLargeError
from mloop.security.access import Role
from mloop.security.auth import auth_enabled
from mloop.security.identities import Identity
from mloop.security.permissions import JOB_READ, Action, permit
from mloop.security.secrets import JWT_KEY_FILE, server_secret
from mloop.security.sessions import SessionStore
from mloop.serving.state import ServingState, serving_state
from mloop.settings import Settings
from mloop.store import open_database

SESSION_COOKIE = "mloop_session"
FLASH_COOKIE = "mloop_flash"
LOGIN_COOKIE = "mloop_login"  # the pre-session nonce the login form's token is signed over
LOCAL = "local"  # who acts in the console when the server runs with auth off
MAX_FORM_BYTES = 64 * 1024
NAV = (  # (label, url, the role its page needs): an identity sees the entries it may open
    ("Models", "/ui/models", Role.VIEWER),
    ("Deployments", "/ui/deployments", Role.VIEWER),
    ("Monitoring", "/ui/monitoring", Role.VIEWER),
    ("Approvals", "/ui/approvals", Role.VIEWER),
    ("Audit", "/ui/audit", Role.VIEWER),
    ("Jobs", "/ui/jobs", JOB_READ.role),  # as GET /jobs
)
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_secrets: dict[str, bytes] = {}


@dataclass(frozen=True)
class ConsoleUser:
    """Who uses the console: `name` is the actor written to the audit trail."""

    name: str
    roles: frozenset[str]
    csrf_token: str
    identity: Identity
    local: bool = False  # the anonymous local identity of a server with auth off

    def holds(self, role: Any) -> bool:
        return self.identity.holds(role)


class LoginRequired(Exception):
    """No live session on a server with auth on: the handler redirects to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfError(MloopError):
    http_status = 403
    exit_code = 8


def state(request: Request) -> ServingState:
    """The server's shared state (runtime, pool, traffic, services) for a handler."""
    return serving_state(request)


def console_secret(settings: Settings) -> bytes:
    """A key for the console's own MACs (flash cookies, the local CSRF token)."""
    key = str(settings.home)
    if key not in _secrets:
        base = server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE)
        _secrets[key] = hmac.new(base, b"mloop console", hashlib.sha256).digest()
    return _secrets[key]


def _mac(settings: Settings, text: str) -> str:
    return hmac.new(console_secret(settings), text.encode(), hashlib.sha256).hexdigest()


def login_token(settings: Settings, nonce: str) -> str:
    """The login form's CSRF token: a MAC of the nonce in its cookie (a signed double
    submit), so a form posted from another site (no cookie, or no matching token) is refused."""
    return _mac(settings, f"login:{nonce}")


def check_login_token(request: Request, sent: str) -> None:
    """Refuse a login POST whose token does not match the pre-session cookie (login CSRF)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    expected = login_token(state(request).settings, nonce) if nonce else ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfError(
            "the login form's CSRF token is missing or wrong (a login is only accepted from "
            "this server's own login form)",
            hint="open /ui/login again and log in from there (cookies must be allowed)",
        )


def auth_on(request: Request) -> bool:
    """True when this server needs credentials (the console then needs a login)."""
    return auth_enabled(state(request).settings)


def sessions(request: Request) -> SessionStore:
    return SessionStore(open_database(state(request).settings))


def local_user(settings: Settings) -> ConsoleUser:
    """The anonymous identity of a server with auth off: every action allowed, as the API."""
    identity = Identity(LOCAL, frozenset({"admin"}))
    return ConsoleUser(LOCAL, identity.roles, _mac(settings, "csrf:local"), identity, local=True)


async def session_user(request: Request) -> ConsoleUser | None:
    """The user of this request's live session cookie, or None."""
    if hasattr(request.state, "console_user"):
        return request.state.console_user
    found = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = await run_in_threadpool(sessions(request).lookup, cookie)
    user = ConsoleUser(found[0].name, found[0].roles, found[1], found[0]) if found else None
    if user is None and not auth_on(request):
        user = local_user(state(request).settings)
    request.state.console_user = user
    return user


async def current_user(request: Request) -> ConsoleUser:
    """FastAPI dependency: the logged-in user; without one, a 303 to `/ui/login?next=...`."""
    user = await session_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/ui/")
    return user


async def form_data(request: Request) -> dict[str, str]:
    """The posted `application/x-www-form-urlencoded` fields (last value of each name)."""
    if not hasattr(request.state, "console_form"):
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLargeError(f"a console form is limited to {MAX_FORM_BYTES} bytes")
        text = body.decode("utf-8", errors="replace")
        request.state.console_form = dict(parse_qsl(text, keep_blank_values=True))
    return request.state.console_form


def same_origin(request: Request) -> None:
    """Refuse a POST whose Origin header names another site (a cross-site form)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise CsrfError(f"cross-site request refused (Origin {origin})")


def acting(action: Action) -> Any:
    """Dependency factory for POST handlers: checks the session, the Origin and the action's
    role before a byte of the form is read (as the API checks roles before bodies), then the
    form's CSRF token.

    A refusal answers a 403 page naming the role needed; the returned ConsoleUser's `name`
    is the actor to record.
    """

    async def dependency(request: Request, user: ConsoleUser = Depends(current_user)):
        same_origin(request)
        permit(user.identity, action.role, action.name)
        sent = (await form_data(request)).get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
            raise CsrfError(
                "the form's CSRF token is missing or wrong",
                hint="reload the page and submit the form again",
            )
        return user

    return dependency


def require_role(user: ConsoleUser, action: Action) -> None:
    """Raise PermissionDeniedError (a 403 page) unless `user` may do `action` (for GETs)."""
    permit(user.identity, action.role, action.name)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message shown once on the next page rendered (carried by a signed cookie)."""
    request.state.console_flash_out = [kind if kind in ("ok", "error") else "ok", message]


def see_other(url: str) -> RedirectResponse:
    """The redirect after a POST (303: the browser follows with a GET)."""
    return RedirectResponse(url, status_code=303)


def encode_flash(settings: Settings, value: list[str]) -> str:
    data = base64.urlsafe_b64encode(orjson.dumps(value)).decode()
    return f"{data}.{_mac(settings, data)}"


def read_flashes(request: Request) -> list[dict[str, str]]:
    """The flash message the last redirect carried (checked, then cleared by the middleware)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw:
        return []
    data, mac = raw.rsplit(".", 1)
    request.state.console_flash_read = True
    if not hmac.compare_digest(mac, _mac(state(request).settings, data)):
        return []
    try:
        kind, message = orjson.loads(base64.urlsafe_b64decode(data))
    except (ValueError, TypeError):
        return []
    return [{"kind": str(kind), "message": str(message)}]


def chart(chart_id: str, figure: dict[str, Any]) -> Markup:
    """A Plotly chart: a placeholder plus its figure as JSON data (drawn by console.js)."""
    text = orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    safe_id = Markup.escape(chart_id)
    return Markup(
        f'<div class="chart" data-chart="{safe_id}"></div>'
        f'<script type="application/json" id="{safe_id}">{text}</script>'
    )


def login_url(next_url: str) -> str:
    return f"/ui/login?next={quote(next_url, safe='/')}"


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """`template` rendered with the base layout's context: user, csrf_token, nav, flashes."""
    user = getattr(request.state, "console_user", None)
    path = request.url.path
    page = {
        "request": request,
        "user": user,
        "csrf_token": user.csrf_token if user else "",
        "nav": [
            {"label": label, "url": url, "active": path.startswith(url)}
            for label, url, role in NAV
            if user is not None and user.holds(role)
        ],
        "flashes": read_flashes(request),
        "version": __version__,
        "auth_on": auth_on(request),
        **context,
    }
    return HTMLResponse(_env.get_template(template).render(page), status_code=status_code)


def error_page(request: Request, status_code: int, message: str, hint: str | None = None):
    """The console's error page (403 refusals, 404s, bad input) with `status_code`."""
    titles = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found"}
    context = {
        "title": titles.get(status_code, "Error"),
        "status": status_code,
        "message": message,
        "hint": hint,
    }
    return render(request, "error.html", context, status_code)


_env.globals["chart"] = chart
