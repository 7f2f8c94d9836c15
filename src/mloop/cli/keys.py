"""`mloop keys create|list|revoke`: API keys of identities (stored hashed, shown once)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mloop.cli.console import console, err_console
from mloop.cli.identity import ADMIN_AS_OPTION, audited_store, authorized

app = typer.Typer(
    help="API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`.\n\n"
    "Example: mloop keys create alice --label laptop",
    no_args_is_help=True,
)


def _context():
    from mloop.security.keys import KeyStore  # lazy: +0.5 s at CLI start-up

    return audited_store(KeyStore)


@app.command("create")
def create(
    user: str = typer.Argument(..., help="Identity the key belongs to."),
    label: str | None = typer.Option(None, "--label", help="What the key is for."),
    as_user: str | None = ADMIN_AS_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (includes the key)."),
) -> None:
    """Create an API key; the key is printed once and only its hash is stored.

    Example: mloop keys create alice --label ci
    """
    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up

    settings, store = _context()
    key, info = store.create(user, actor=operator(settings, as_user), label=label)
    if as_json:
        typer.echo(json.dumps({"key": key, **info.to_dict()}))
        return
    typer.echo(key)
    err_console.print(
        f"key [bold]{info.key_id}[/] for {user}: store it now, it is not shown again",
        highlight=False,
    )


@app.command("list")
def list_keys(
    user: str | None = typer.Option(None, "--user", help="Only this identity's keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List keys (ids, owners, labels, revocation), never their secrets.

    Example: mloop keys list --user alice
    """
    authorized(None, "IDENTITY_READ")
    _settings, store = _context()
    keys = store.list(user)
    if as_json:
        typer.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    table = Table(title="API keys")
    for column in ("key id", "identity", "label", "created", "status"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.key_id,
            k.identity,
            k.label or "",
            k.created_at.strftime("%Y-%m-%d %H:%M") if k.created_at else "",
            "[red]revoked[/]" if k.revoked_at else "active",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="Key id (or the whole key)."),
    as_user: str | None = ADMIN_AS_OPTION,
) -> None:
    """Revoke a key: servers refuse it within a few seconds.

    Example: mloop keys revoke 3f9c2a1b7d4e
    """
    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up

    settings, store = _context()
    info = store.revoke(key_id, actor=operator(settings, as_user))
    console.print(f"[yellow]revoked[/] key {info.key_id} of {info.identity}")
