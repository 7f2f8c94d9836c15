"""`mloop users add|list|disable`: identities and their roles."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.cli.identity import ADMIN_AS_OPTION, audited_store, authorized

app = typer.Typer(
    help="Identities (people and services) and their roles.\n\n"
    "Example: mloop users add alice --role ml_lead",
    no_args_is_help=True,
)


def _context():
    from mloop.security.identities import IdentityStore  # lazy: +0.5 s at CLI start-up

    return audited_store(IdentityStore)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Identity name (letters, digits, _ . @ -)."),
    roles: list[str] = typer.Option(
        ...,
        "--role",
        "-r",
        help="Role to hold (repeat): viewer, predictor, data_scientist, "
        "ml_lead, security, compliance, admin.",
    ),
    as_user: str | None = ADMIN_AS_OPTION,
) -> None:
    """Add an identity with one or more roles.

    Example: mloop users add carol --role compliance --role viewer
    """
    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up

    settings, store = _context()
    identity = store.add(name, roles, actor=operator(settings, as_user))
    console.print(f"[green]added[/] {identity.name} with roles {', '.join(sorted(identity.roles))}")
    console.print(f"give it a key: mloop keys create {identity.name}", highlight=False)


@app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List identities, their roles and whether they are disabled.

    Example: mloop users list --json
    """
    authorized(None, "IDENTITY_READ")
    _settings, store = _context()
    identities = store.list()
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in identities], indent=2))
        return
    if not identities:
        console.print("No identities yet. Add one: mloop users add NAME --role ROLE")
        return
    table = Table(title="Identities")
    for column in ("name", "roles", "status", "created", "by"):
        table.add_column(column)
    for i in identities:
        table.add_row(
            i.name,
            ", ".join(sorted(i.roles)),
            "[red]disabled[/]" if i.disabled else "active",
            i.created_at.strftime("%Y-%m-%d %H:%M") if i.created_at else "",
            i.created_by or "",
        )
    console.print(table)


@app.command("disable")
def disable(
    name: str = typer.Argument(..., help="Identity to disable."),
    as_user: str | None = ADMIN_AS_OPTION,
) -> None:
    """Disable an identity: its keys and tokens stop working (within a few seconds on servers).

    Example: mloop users disable bob
    """
    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up

    settings, store = _context()
    store.disable(name, actor=operator(settings, as_user))
    console.print(f"[yellow]disabled[/] {name}")


@app.command("set-password")
def set_password(
    name: str = typer.Argument(..., help="Identity whose console password to set."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin (first line)."
    ),
    as_user: str | None = ADMIN_AS_OPTION,
) -> None:
    """Set an identity's web console password (stored as a salted scrypt hash).

    Example: mloop users set-password alice --password-stdin < alice.pw
    """
    import sys

    from mloop.security.acting import operator  # lazy: +0.4 s at CLI start-up
    from mloop.security.passwords import PasswordStore  # lazy: +0.3 s at CLI start-up

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings, store = audited_store(PasswordStore)
    store.set(name, password, actor=operator(settings, as_user))
    console.print(f"[green]password set[/] for {name}: log in at /ui/login", highlight=False)
