"""`mloop token issue USER`: a signed bearer token (JWT, HS256) with an expiry."""

from __future__ import annotations

import typer

from mloop.cli.console import err_console
from mloop.cli.identity import ADMIN_AS_OPTION
from mloop.errors import ConflictError
from mloop.settings import get_settings

app = typer.Typer(
    help="Bearer tokens (JWT HS256, signed with MLOOP_JWT_SECRET or $MLOOP_HOME/jwt.key).\n\n"
    "Example: mloop token issue alice --ttl 3600",
    no_args_is_help=True,
)


@app.command("issue")
def issue(
    user: str = typer.Argument(..., help="Identity the token names."),
    ttl: int | None = typer.Option(
        None, "--ttl", min=1, help="Lifetime in seconds [MLOOP_TOKEN_TTL_SECONDS]."
    ),
    as_user: str | None = ADMIN_AS_OPTION,
) -> None:
    """Issue a token for an active identity; servers sharing the secret accept it until expiry.

    Example: curl -H "Authorization: Bearer $(mloop token issue alice)" localhost:8000/model/info
    """
    from mloop.governance.audit import audit_log  # lazy: +0.3 s at CLI start-up
    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up
    from mloop.security.identities import IdentityStore  # lazy: +0.5 s at CLI start-up
    from mloop.security.secrets import JWT_KEY_FILE, server_secret  # lazy: +0.8 ms at CLI start-up
    from mloop.security.tokens import issue_token  # lazy: +39 ms at CLI start-up
    from mloop.store import open_database  # lazy: +0.3 s at CLI start-up

    settings = get_settings()
    actor = operator(settings, as_user)
    identity = IdentityStore(open_database(settings)).get(user)
    if identity.disabled:
        raise ConflictError(f"identity '{user}' is disabled: it cannot get tokens")
    lifetime = ttl or settings.token_ttl_seconds
    secret = server_secret(settings.jwt_secret, settings.home, JWT_KEY_FILE)
    token = issue_token(identity.name, secret, lifetime)
    audit_log(settings).record(actor, "token.issue", identity.name, ttl_seconds=lifetime)
    typer.echo(token)
    err_console.print(f"token for {user}, valid {lifetime}s", highlight=False)
