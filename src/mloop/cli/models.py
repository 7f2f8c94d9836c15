"""`mloop models ...`: list, show, promote, roll back and trace registered model versions."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from mloop.cli.console import console, err_console
from mloop.cli.identity import authorized
from mloop.registry.records import Transition
from mloop.registry.stages import VALID_STAGES, Stage, parse_stage
from mloop.settings import get_settings

app = typer.Typer(
    help=(
        "Registered models: versions, stages (None, Staging, Production, Archived), "
        "lineage and rollback.\n\nExample: mloop models promote churn 3 --stage Production"
    ),
    no_args_is_help=True,
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")
AS_OPTION = typer.Option(
    None, "--as", help="Act as this identity (needs ml_lead; recorded) [MLOOP_USER]."
)
REASON_OPTION = typer.Option(None, "--reason", help="Why (recorded in the stage history).")


def _registry():
    from mloop.governance.governed import governed_registry  # lazy: +0.5 s at CLI start-up

    return governed_registry(get_settings())


def _actor(as_user: str | None, action: str) -> str:
    return authorized(as_user, action)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _text(value: object) -> str:
    """A cell value: blank for None, seconds for times, markup-escaped for the rest."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return escape(str(value))


@app.command("list")
def list_models(as_json: bool = JSON_OPTION) -> None:
    """List registered models with their latest version and who holds Staging and Production.

    Example: mloop models list --json
    """
    _actor(None, "MODEL_READ")
    summaries = _registry().list_models()
    if as_json:
        _echo_json([summary.to_dict() for summary in summaries])
        return
    if not summaries:
        console.print("No registered models yet. Train one with `mloop train`.")
        return
    table = Table(title="Registered models")
    table.add_column("name", no_wrap=True)
    for column in ("latest", "versions", "staging", "production"):
        table.add_column(column, justify="right")
    table.add_column("updated")
    table.add_column("description", overflow="fold", ratio=1)
    for s in summaries:
        table.add_row(
            _text(s.name),
            _text(s.latest_version),
            str(s.version_count),
            _text(s.staging_version),
            _text(s.production_version),
            s.last_updated.strftime("%Y-%m-%d %H:%M") if s.last_updated else "",
            _text(s.description),
        )
    console.print(table)


@app.command("show")
def show(
    ref: str = typer.Argument(
        ..., metavar="NAME[/VERSION|@ALIAS]", help="Model reference; NAME alone is the latest."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one version: stage, aliases, run metrics and params, lineage and stage history.

    Example: mloop models show churn@production
    """
    _actor(None, "MODEL_READ")
    details = _registry().get_version(ref)
    if as_json:
        _echo_json(details.to_dict())
        return
    console.print(f"[bold]{_text(details.name)}[/] version [bold]{details.version}[/]")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    for label, value in (
        ("stage", details.stage.value),
        ("aliases", ", ".join(details.aliases) or "-"),
        ("status", details.status),
        ("created", details.created_at),
        ("uri", details.uri),
        ("source", details.source),
        ("run", details.run_id or "-"),
        ("description", details.description or "-"),
    ):
        facts.add_row(label, _text(value))
    console.print(facts)
    _print_mapping("Metrics", details.metrics, number=True)
    _print_mapping("Parameters", details.params)
    _print_mapping("Lineage", details.lineage)
    if details.history:
        console.print(_history_table(details.history, title="Stage history"))
    else:
        console.print("[dim]No stage changes recorded.[/]")


def _print_mapping(title: str, values: dict[str, Any], *, number: bool = False) -> None:
    if not values:
        console.print(f"[dim]{title}: none recorded.[/]")
        return
    table = Table(title=title, title_justify="left")
    table.add_column("name")
    table.add_column("value", justify="right" if number else "left", overflow="fold")
    for key, value in sorted(values.items()):
        shown = f"{value:.6g}" if number and isinstance(value, float) else str(value)
        table.add_row(_text(key), _text(shown))
    console.print(table)


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number to move."),
    stage: str = typer.Option(..., "--stage", "-s", help=f"Target stage: {VALID_STAGES}."),
    reason: str | None = REASON_OPTION,
    as_user: str | None = AS_OPTION,
    approval: int | None = typer.Option(
        None, "--approval", help="Approved request authorising the move (policy stages)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move a version to a stage; the version that held Staging/Production becomes Archived.

    Staging and Production are the MLflow aliases `staging` and `production`. A stage whose
    policy requires approval is refused (exit 4) without an approved request: see
    `mloop approvals`.

    Example: mloop models promote churn 3 --stage Production --reason "better AUC"
    """
    target = parse_stage(stage)
    actor = _actor(as_user, "MODEL_PROMOTE")
    moved = _registry().promote(
        name, version, target, actor=actor, reason=reason, approval=approval
    )
    if as_json:
        _echo_json(moved.to_dict())
        return
    console.print(
        f"[green]moved[/] {_text(name)}/{moved.version}: "
        f"{moved.from_stage.value} -> [bold]{moved.to_stage.value}[/]"
    )
    if moved.archived_version:
        console.print(
            f"[yellow]archived[/] {_text(name)}/{moved.archived_version}: "
            f"{moved.to_stage.value} -> {Stage.ARCHIVED.value}"
        )
    if moved.to_stage.alias:
        console.print(f"load it as models:/{_text(name)}@{moved.to_stage.alias}")


@app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="Registered model name."),
    stage: str = typer.Option(
        Stage.PRODUCTION.value, "--stage", "-s", help="Stage to roll back: Production or Staging."
    ),
    reason: str | None = REASON_OPTION,
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give a stage back to the version its current holder replaced; archive the holder.

    Running it again walks further back through the recorded history.

    Example: mloop models rollback churn
    """
    target = parse_stage(stage)
    actor = _actor(as_user, "MODEL_ROLLBACK")
    back = _registry().rollback(name, stage=target, actor=actor, reason=reason)
    if as_json:
        _echo_json(back.to_dict())
        return
    console.print(
        f"[green]rolled back[/] {_text(name)} {back.to_stage.value}: "
        f"version {back.archived_version} -> version [bold]{back.version}[/]"
    )
    console.print(f"[yellow]archived[/] {_text(name)}/{back.archived_version}")


@app.command("alias")
def alias(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number the alias points at."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="Alias (e.g. candidate)."),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Point any alias but a stage's (`staging`, `production`: use promote) at a version.

    Needs ml_lead, like promote, and is recorded in the audit trail (`model.alias`).
    Deployments and `mloop serve` resolve `NAME@ALIAS` to the version it points at.

    Example: mloop models alias churn 2 candidate
    """
    actor = _actor(as_user, "MODEL_ALIAS")
    _registry().set_alias(name, alias_name, version, actor=actor)
    number = str(int(version))
    if as_json:
        _echo_json({"model": name, "alias": alias_name, "version": number, "actor": actor})
        return
    console.print(f"[green]alias[/] {_text(name)}@{_text(alias_name)} -> version {number}")
    console.print(f"load it as models:/{_text(name)}@{_text(alias_name)}", highlight=False)


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show every recorded stage change of a model, oldest first.

    Example: mloop models history churn --json
    """
    _actor(None, "MODEL_READ")
    transitions = _registry().history(name)
    if as_json:
        _echo_json([transition.to_dict() for transition in transitions])
        return
    if not transitions:
        console.print(f"No stage changes recorded for {_text(name)}.")
        return
    console.print(_history_table(transitions, title=f"Stage history of {_text(name)}"))


def _history_table(transitions: list[Transition], *, title: str) -> Table:
    """Oldest first; `replaced_version` stays in --json (the archive rows already say it)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("when (UTC)", "version", "from", "to", "actor"):
        table.add_column(column, no_wrap=column != "actor")
    table.add_column("reason", overflow="fold", ratio=1, min_width=12)
    for t in transitions:
        table.add_row(
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            _text(t.version),
            t.from_stage.value,
            t.to_stage.value,
            _text(t.actor),
            _text(t.reason),
        )
    return table


@app.command("card")
def card(
    ref: str = typer.Argument(..., metavar="NAME/VERSION", help="Version to describe."),
    owner: str | None = typer.Option(None, "--owner", help="Accountable owner (recorded)."),
    intended_use: str | None = typer.Option(
        None, "--intended-use", help="What the model is for, and not for (recorded)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for card.md and card.html [./cards/NAME-VERSION]."
    ),
    as_user: str | None = typer.Option(None, "--as", help="Recorded as the author [MLOOP_USER]."),
) -> None:
    """Write a model card (Markdown and HTML): owner, intended use, data digest, commit,
    parameters, metrics, validation results, approvals and deployment history.

    Owner and intended use are kept on the version, so later cards need them only once.

    Example: mloop models card churn/3 --owner alice --intended-use "retention campaigns"
    """
    from mloop.governance.cards import write_card  # lazy: +0.6 s at CLI start-up
    from mloop.registry.service import Registry  # lazy: +0.3 s at CLI start-up

    settings = get_settings()
    actor = _actor(as_user, "MODEL_CARD")
    details = Registry(settings).get_version(ref)
    folder = out or Path("cards") / f"{details.name}-{details.version}"
    with err_console.status("writing the model card (validation suite runs when needed)"):
        written, markdown, page = write_card(
            settings,
            f"{details.name}/{details.version}",
            folder,
            owner=owner,
            intended_use=intended_use,
            actor=actor,
        )
    console.print(f"[green]wrote[/] {markdown} and {page}", highlight=False)
    console.print(f"owner {_text(written.owner)}; logged to run {written.facts['run']}")
