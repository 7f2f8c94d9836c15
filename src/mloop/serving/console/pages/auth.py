"""Login (an API key, or a username and password) and logout: a server-side session cookie.

The cookie `mloop_session` is HttpOnly, SameSite=Strict, Path=/ui and Secure when the server
runs TLS. Before any session, the form carries a login CSRF token signed over the nonce of the
`mloop_login` cookie (same flags, Path=/ui/login): a login posted without both is a 403, so
another site cannot log a browser into an account of its choosing. A refused login answers
the form again with 401 and one message for every cause. Logins, refused logins and logouts
are recorded in the audit chain.
"""

from __future__ import annotations

import re
import secrets

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import AuthenticationError, RateLimitedError
from mloop.governance.audit import audit_log
from mloop.security.access import Role
from mloop.security.identities import Identity
from mloop.security.keys import KeyStore
from mloop.security.passwords import PasswordStore
from mloop.security.permissions import Action
from mloop.serving.console.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleUser,
    acting,
    auth_on,
    check_login_token,
    flash,
    form_data,
    login_token,
    render,
    same_origin,
    see_other,
    session_user,
    sessions,
    state,
)
from mloop.settings import Settings
from mloop.store import open_database

router = APIRouter()
LOGOUT = Action("log out of the console", Role.VIEWER)
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def safe_next(value: str | None) -> str:
    """A local console URL to go to after login (anything else: the console's home)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def check_login(settings: Settings, form: dict[str, str]) -> tuple[Identity, str]:
    """(identity, method) for the posted credentials; AuthenticationError otherwise."""
    database = open_database(settings)
    key = form.get("api_key", "").strip()
    if key:
        try:
            return KeyStore(database).authenticate(key), "api_key"
        except AuthenticationError:
            raise AuthenticationError("unknown identity or wrong password or key") from None
    name, password = form.get("username", "").strip(), form.get("password", "")
    try:
        return PasswordStore(database).authenticate(name, password), "password"
    except AuthenticationError:
        raise AuthenticationError("unknown identity or wrong password or key") from None


async def throttle(request: Request) -> None:
    """Login attempts spend the server's rate budget per client address (when one is set)."""
    limiter = getattr(state(request).auth, "limiter", None)
    if limiter is None:
        return
    client = request.client.host if request.client else "unknown"
    wait = await limiter.take(f"console-login:{client}")
    if wait > 0:
        raise RateLimitedError(
            f"too many login attempts from {client}: {limiter.rate:g}/s, burst {limiter.burst}",
            retry_after=wait,
        )


def _nonce(request: Request) -> str:
    """The login cookie's nonce, or a new one (a malformed cookie is replaced)."""
    found = request.cookies.get(LOGIN_COOKIE, "")
    return found if _NONCE.fullmatch(found) else secrets.token_urlsafe(32)


def _login_page(request: Request, next_url: str, error: str | None, status: int) -> Response:
    """The form with its login CSRF token; (re)sets the nonce cookie the token is signed over."""
    settings = state(request).settings
    nonce = _nonce(request)
    context = {"next": next_url, "error": error, "login_token": login_token(settings, nonce)}
    response = render(request, "login.html", context, status)
    _set_cookie(response, settings, LOGIN_COOKIE, nonce, "/ui/login")
    return response


def _set_cookie(response: Response, settings, name: str, value: str, path: str) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, Secure when the server runs TLS."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=settings.ssl_certfile is not None,
        path=path,
    )


@router.get("/ui/login")
async def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    """The login form (API key, or username and password)."""
    await session_user(request)
    return _login_page(request, safe_next(next), None, 200)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """Check the login CSRF token and the credentials, open a session (purging expired ones),
    set its cookie, go to `next`."""
    same_origin(request)
    await throttle(request)
    settings = state(request).settings
    form = await form_data(request)
    check_login_token(request, form.get("login_token", ""))
    next_url = safe_next(form.get("next"))
    log = audit_log(settings)
    try:
        identity, method = await run_in_threadpool(check_login, settings, form)
    except AuthenticationError as exc:
        claimed = form.get("username", "").strip()[:128] or "(api key)"
        await run_in_threadpool(log.record, claimed, "console.login_refused", claimed)
        request.state.console_user = None
        return _login_page(request, next_url, exc.message, 401)
    store = sessions(request)
    await run_in_threadpool(store.purge)
    value, _csrf = await run_in_threadpool(store.open, identity.name)
    await run_in_threadpool(
        log.record, identity.name, "console.login", identity.name, method=method
    )
    response = see_other(next_url)
    _set_cookie(response, settings, SESSION_COOKIE, value, "/ui")
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login", httponly=True, samesite="strict")
    return response


@router.post("/ui/logout")
async def logout(request: Request, user: ConsoleUser = Depends(acting(LOGOUT))) -> Response:
    """Revoke the session server-side (its cookie stops working everywhere), clear it."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    ended = await run_in_threadpool(sessions(request).revoke, cookie) if cookie else None
    if ended is not None:
        log = audit_log(state(request).settings)
        await run_in_threadpool(log.record, ended, "console.logout", ended)
    flash(request, "logged out")
    response = see_other("/ui/login" if auth_on(request) or ended else "/ui/")
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
