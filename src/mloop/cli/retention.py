"""`mloop retention show|apply`: the MLOOP_RETENTION_* policies and applying them now."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.cli.identity import authorized
from mloop.settings import get_settings

app = typer.Typer(
    help="How long predictions, feedback and audit rows are kept (MLOOP_RETENTION_*).\n\n"
    "Example: MLOOP_RETENTION_PREDICTIONS_DAYS=30 mloop retention apply --dry-run",
    no_args_is_help=True,
)


@app.command("apply")
def apply(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    as_user: str | None = typer.Option(
        None, "--as", help="Act as this identity (admin) [MLOOP_USER]."
    ),
) -> None:
    """Apply the retention policies now (`mloop worker` also does, every interval).

    Prediction-log and feedback rows past their age or size limit are deleted. Audit rows are
    pruned from the front of the chain behind a signed checkpoint, after being verified: a
    broken chain is never pruned (exit 6). Export first if you must keep the rows:
    `mloop audit export`, `mloop predictions export`.

    Example: MLOOP_RETENTION_AUDIT_DAYS=365 mloop retention apply --dry-run
    """
    from mloop.governance.audit import audit_log  # lazy: +0.3 s at CLI start-up
    from mloop.governance.checkpoints import audit_key  # lazy: as above
    from mloop.governance.retention import (  # lazy: as above
        apply_retention,
        policies,
        record_outcomes,
    )

    actor = authorized(as_user, "RETENTION_APPLY")
    settings = get_settings()
    log = audit_log(settings)
    rules = policies(settings)
    outcomes = apply_retention(log.database, audit_key(settings), rules, dry_run=dry_run)
    record_outcomes(log, actor, outcomes)
    if as_json:
        typer.echo(json.dumps([o.to_dict() for o in outcomes]))
        return
    if not outcomes:
        console.print("no retention policy is set (MLOOP_RETENTION_*): everything is kept")
        return
    table = Table("table", "policy", "would delete" if dry_run else "deleted", "kept")
    for o in outcomes:
        table.add_row(o.table, o.policy, str(o.deleted), str(o.kept))
    console.print(table)
    for o in outcomes:
        if o.checkpoint:
            console.print(
                f"audit checkpoint {o.checkpoint['id']}: rows 1 to {o.checkpoint['last_seq']} "
                "pruned and signed; `mloop audit verify` vouches for them",
                highlight=False,
            )


@app.command("show")
def show() -> None:
    """Print the configured policies (0 keeps everything).

    Example: mloop retention show
    """
    from mloop.governance.retention import policies  # lazy: +0.3 s at CLI start-up

    settings = get_settings()
    for rule in policies(settings):
        console.print(f"{rule.table}: {rule.describe()}", highlight=False)
    console.print(f"applied by `mloop worker` every {settings.retention_interval_seconds:g} s")
