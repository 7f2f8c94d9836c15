"""`mloop approvals submit|approve|reject|list|show`: the promotion approval workflow."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from mloop.cli.console import console, err_console
from mloop.cli.identity import authorized
from mloop.errors import ConflictError
from mloop.settings import get_settings

app = typer.Typer(
    help="Approval requests for promotions: gates computed by mloop, approvals by distinct "
    "identities holding the policy's roles; the last approval promotes.\n\n"
    "Example: mloop approvals submit churn 3 --stage Production --as alice",
    no_args_is_help=True,
)
AS_OPTION = typer.Option(None, "--as", help="Act as this identity [MLOOP_USER].")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


def _context(as_user: str | None, action: str):
    """(service, actor) for `action` (a `permissions` name), checked as its REST route is.

    Reads run as any identity (or none); submitting, approving and rejecting need one.
    """
    from mloop.governance.approvals import ApprovalService  # lazy: +0.4 s at CLI start-up
    from mloop.security.acting import acting_identity  # lazy: +0.4 s at CLI start-up

    settings = get_settings()
    actor = authorized(as_user, action)
    if action != "APPROVAL_READ":
        actor = acting_identity(settings, as_user)
    return ApprovalService(settings), actor


def _show(request, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(request.to_dict(), indent=2))
        return
    colour = {"pending": "yellow", "promoted": "green", "approved": "green"}.get(
        request.status, "red"
    )
    console.print(
        f"request [bold]{request.id}[/]: {escape(request.model_name)}/{request.version} -> "
        f"{request.stage}  [{colour}]{request.status}[/]  (by {escape(request.requester)})"
    )
    if request.missing_roles and request.status == "pending":
        console.print(f"  waiting for: {', '.join(request.missing_roles)}")
    if request.outcome:
        console.print(f"  outcome: {escape(request.outcome)}")
    if request.gates:
        table = Table(title="gates (computed by mloop)", title_justify="left")
        for column in ("gate", "result", "detail"):
            table.add_column(column, overflow="fold")
        for gate in request.gates:
            verdict = "[green]pass[/]" if gate["passed"] else "[red]FAIL[/]"
            table.add_row(gate["gate"], verdict, escape(gate["detail"]))
        console.print(table)
    for action in request.actions:
        console.print(
            f"  {action['at'][:19]}  {escape(action['actor'])} {_past(action['decision'])}"
            + (f" as {action['role']}" if action["role"] else "")
            + (f": {escape(action['comment'])}" if action["comment"] else "")
        )


def _past(decision: str) -> str:
    """`approved`, `rejected`: the past tense of a recorded decision."""
    return decision + ("d" if decision.endswith("e") else "ed")


@app.command("submit")
def submit(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number."),
    stage: str = typer.Option(..., "--stage", "-s", help="Target stage (e.g. Production)."),
    comment: str | None = typer.Option(None, "--comment", help="Why this version."),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Request a promotion; mloop runs the stage's gates now and rejects on any failure.

    Example: mloop approvals submit churn 3 --stage Production --as alice
    """
    service, actor = _context(as_user, "APPROVAL_SUBMIT")
    with err_console.status("running gates (metrics, validation suite, card, drift)"):
        request = service.submit(name, version, stage, requester=actor, comment=comment)
    _show(request, as_json)


@app.command("approve")
def approve(
    request_id: str = typer.Argument(..., metavar="ID", help="Request id."),
    comment: str | None = typer.Option(None, "--comment", help="Recorded with the approval."),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Approve a pending request; the last required approval promotes the version.

    Example: mloop approvals approve 7 --as bob
    """
    service, actor = _context(as_user, "APPROVAL_APPROVE")
    request = service.approve(request_id, actor=actor, comment=comment)
    _show(request, as_json)
    if request.status == "approved":  # every approval given, but the promotion failed
        raise ConflictError(
            f"request {request.id} is approved but not promoted: {request.outcome}",
            hint=f"retry: mloop models promote {request.model_name} {request.version} "
            f"--stage {request.stage} --approval {request.id}",
        )


@app.command("reject")
def reject(
    request_id: str = typer.Argument(..., metavar="ID", help="Request id."),
    reason: str = typer.Option(..., "--reason", help="Why (required, recorded)."),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Reject a pending request: one rejection closes it.

    Example: mloop approvals reject 7 --reason "calibration off on new region" --as carol
    """
    service, actor = _context(as_user, "APPROVAL_REJECT")
    _show(service.reject(request_id, actor=actor, reason=reason), as_json)


@app.command("list")
def list_requests(
    status: str | None = typer.Option(
        None, "--status", help="pending, approved, promoted or rejected."
    ),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List approval requests, oldest first.

    Example: mloop approvals list --status pending
    """
    service, _ = _context(None, "APPROVAL_READ")
    requests = service.list(status, model)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in requests], indent=2))
        return
    if not requests:
        console.print("No approval requests.")
        return
    table = Table(title="Approval requests")
    for column in ("id", "model", "stage", "status", "requester", "waiting for", "created"):
        table.add_column(column)
    for r in requests:
        table.add_row(
            str(r.id),
            escape(f"{r.model_name}/{r.version}"),
            r.stage,
            r.status,
            escape(r.requester),
            ", ".join(r.missing_roles) if r.status == "pending" else "",
            r.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command("show")
def show(
    request_id: str = typer.Argument(..., metavar="ID", help="Request id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one request: gates, approvals and rejections with identities and times.

    Example: mloop approvals show 7 --json
    """
    service, _ = _context(None, "APPROVAL_READ")
    _show(service.get(request_id), as_json)
