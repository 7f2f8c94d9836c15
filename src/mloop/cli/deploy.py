"""`mloop deploy ...`: apply, inspect, shift, promote, roll back and analyse deployments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mloop.cli.console import console, err_console
from mloop.cli.deploy_render import render
from mloop.cli.identity import authorized
from mloop.settings import get_settings

app = typer.Typer(
    help="Deployments: named specs of model variants with a traffic policy (single, ab, "
    "canary, shadow, blue_green), versioned in the platform database.\n\n"
    "Example: mloop deploy apply examples/deployments/ab.yaml",
    no_args_is_help=True,
)

app.command("render")(render)  # deploy_render.py: a spec as Kubernetes manifests

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")
AS_OPTION = typer.Option(None, "--as", help="Act as this identity (recorded in the audit log).")


def _service():
    from mloop.deploy.service import DeploymentService  # lazy: +0.3 s at CLI start-up

    return DeploymentService(get_settings())


def _actor(as_user: str | None, action: str) -> str:
    return authorized(as_user, action)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _done(written, verb: str, as_json: bool) -> None:
    if as_json:
        _echo_json(written.to_dict())
    else:
        console.print(f"{verb} deployment [bold]{written.name}[/] (revision {written.revision})")


@app.command("apply")
def apply(
    spec_file: Path = typer.Argument(..., help="Deployment spec (YAML)."),
    revision: int | None = typer.Option(
        None, "--revision", help="Fail unless this is still the current revision."
    ),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a deployment or write a new revision of it; every model must resolve.

    Example: mloop deploy apply examples/deployments/canary.yaml
    """
    from mloop.deploy.spec import load_spec  # lazy: +0.3 s at CLI start-up

    spec = load_spec(spec_file)
    written = _service().apply(spec, _actor(as_user, "DEPLOYMENT_APPLY"), expected=revision)
    _done(written, "applied", as_json)


@app.command("list")
def list_deployments(as_json: bool = JSON_OPTION) -> None:
    """Every deployment with its policy, revision and variants.

    Example: mloop deploy list --json
    """
    _actor(None, "DEPLOYMENT_READ")
    found = _service().list()
    if as_json:
        _echo_json([d.to_dict() for d in found])
        return
    if not found:
        console.print("no deployments yet: mloop deploy apply SPEC.yaml")
        return
    table = Table("name", "policy", "revision", "default", "variants", "updated", "by")
    for d in found:
        variants = ", ".join(f"{v['name']}={v['model']}" for v in d.spec.get("variants", []))
        table.add_row(
            d.name,
            d.spec.get("policy", "single"),
            str(d.revision),
            "yes" if d.is_default else "",
            variants,
            d.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            d.updated_by,
        )
    console.print(table)


@app.command("status")
def status(
    name: str = typer.Argument(...),
    url: str | None = typer.Option(
        None,
        "--url",
        help="Ask this server instead of the database: live requests, errors, p95 latency and "
        "shadow agreement of the traffic it answered (credentials: MLOOP_API_KEY/MLOOP_TOKEN).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Variants, the versions their references hold now, traffic shares and counts.

    Without --url the counts are the prediction log's (last 15 minutes); with --url they are
    the server's own since it started.

    Example: mloop deploy status churn-ab --url http://127.0.0.1:8000
    """
    if url is None:
        _actor(None, "DEPLOYMENT_READ")
        report = _service().status(name)
    else:
        from mloop.client import Client  # lazy: +39 ms at CLI start-up

        with Client(url) as client:
            report = client.deployment(name)
    if as_json:
        _echo_json(report)
        return
    console.print(
        f"[bold]{report['name']}[/] policy {report['policy']}, revision {report['revision']}"
        f" (by {report['updated_by']})",
        highlight=False,
    )
    table = Table("variant", "role", "model", "version", "share %", "requests")
    table.title = f"counts: {report['counts_source']}"
    live = any("errors" in v["counts"] for v in report["variants"])  # a server's own counts
    shadowed = any("shadow_agree" in v["counts"] for v in report["variants"])
    for column, shown in (("errors", live), ("p95 ms", live), ("shadow agreement", shadowed)):
        if shown:
            table.add_column(column)
    for v in report["variants"]:
        share = f"{v['share']:g}"
        if v["shadow_share"]:
            share += f" (+{v['shadow_share']:g} mirrored)"
        counts = v["counts"]
        row = [
            v["variant"],
            v["role"],
            v["model"],
            v["version"] or f"[red]{v['error']}[/]",
            share,
            str(counts.get("requests", "-")),
        ]
        if live:
            row.append(str(counts.get("errors", "-")))
            row.append(f"{counts['p95_ms']:.1f}" if counts.get("p95_ms") is not None else "-")
        if shadowed:
            row.append(_agreement(counts))
        table.add_row(*row)
    console.print(table)
    canary = report.get("canary")
    if canary:
        console.print(
            f"canary {canary['status']} at {canary['percent']:g}%"
            + (f": {canary['reason']}" if canary.get("reason") else ""),
            highlight=False,
        )


def _agreement(counts: dict[str, Any]) -> str:
    """`97.5% of 400 (3 errors, 10 skipped)` for a shadow candidate, else `-`."""
    if "shadow_agree" not in counts:
        return "-"
    compared = counts["shadow_agree"] + counts["shadow_disagree"]
    rate = f"{counts['shadow_agreement']:.1%} of {compared}" if compared else "none compared"
    extra = [f"{counts[f'shadow_{k}']} {k}" for k in ("error", "skipped") if counts[f"shadow_{k}"]]
    return rate + (f" ({', '.join(extra)})" if extra else "")


@app.command("shift")
def shift(
    name: str = typer.Argument(...),
    to: str = typer.Option(..., "--to", help="Variant that gets the share."),
    percent: float = typer.Option(..., "--percent", help="Its percent of the traffic (0-100)."),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give a variant a share of the traffic (the others share the rest).

    Example: mloop deploy shift churn-ab --to challenger --percent 50
    """
    written = _service().shift(name, to, percent, _actor(as_user, "DEPLOYMENT_SHIFT"))
    _done(written, f"shifted {to} to {percent:g}% in", as_json)


@app.command("promote")
def promote(
    name: str = typer.Argument(...),
    variant: str | None = typer.Option(
        None, "--variant", help="Variant to promote (default: the candidate)."
    ),
    as_user: str | None = AS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make the candidate the primary: it takes all the traffic (blue-green: switch slots).

    Example: mloop deploy promote churn-canary
    """
    written = _service().promote(name, _actor(as_user, "DEPLOYMENT_PROMOTE"), variant)
    _done(written, "promoted in", as_json)


@app.command("rollback")
def rollback(
    name: str = typer.Argument(...), as_user: str | None = AS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Restore the previous revision's spec (as a new revision; history is never rewritten).

    Example: mloop deploy rollback churn-canary
    """
    written = _service().rollback(name, _actor(as_user, "DEPLOYMENT_ROLLBACK"))
    _done(written, "rolled back", as_json)


@app.command("delete")
def delete(
    name: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_user: str | None = AS_OPTION,
) -> None:
    """Delete a deployment; its history stays.

    Example: mloop deploy delete churn-old --yes
    """
    if not yes and not typer.confirm(f"delete deployment {name}?"):
        raise typer.Exit(1)
    revision = _service().delete(name, _actor(as_user, "DEPLOYMENT_DELETE"))
    console.print(f"deleted deployment [bold]{name}[/] (history kept, revision {revision})")


@app.command("history")
def history(name: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Every revision: when, who, why, and the versions it resolved to.

    Example: mloop deploy history churn-canary
    """
    _actor(None, "DEPLOYMENT_READ")
    revisions = _service().history(name)
    if as_json:
        _echo_json([r.to_dict() for r in revisions])
        return
    table = Table("rev", "time", "actor", "reason", "policy", "versions", "note")
    for r in revisions:
        versions = ", ".join(f"{v}={m['version']}" for v, m in (r.resolved or {}).items())
        table.add_row(
            str(r.revision),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.actor,
            r.reason,
            (r.spec or {}).get("policy", "-"),
            versions or "-",
            r.note or "",
        )
    console.print(table)


@app.command("report")
def report(
    name: str = typer.Argument(...),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML report here."),
    min_labels: int = typer.Option(
        30, "--min-labels", help="Labelled predictions per variant before a test counts."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Per variant: requests, latency, accuracy with 95% CIs, a z-test, and a recommendation.

    Example: mloop deploy report churn-ab --html ab-report.html
    """
    from mloop.deploy.report import build_report  # lazy: +0.3 s at CLI start-up
    from mloop.deploy.report_html import render  # lazy: +0.2 s at CLI start-up

    _actor(None, "DEPLOYMENT_READ")
    service = _service()
    _, spec = service.get(name)
    with err_console.status("reading the prediction log"):
        result = build_report(
            service.records.database, spec, service.history(name), min_labels=min_labels
        )
    if html is not None:
        html.write_text(render(result), encoding="utf-8")
    if as_json:
        _echo_json(result)
        return
    table = Table("variant", "versions", "requests", "p95 ms", "labelled", "accuracy (95% CI)")
    for v in result["variants"]:
        accuracy = "-"
        if v["accuracy"] is not None:
            low, high = v["accuracy_ci95"]
            accuracy = f"{v['accuracy']:.1%} [{low:.1%}, {high:.1%}]"
        p95 = v["latency_ms"]["p95"]
        table.add_row(
            v["variant"],
            ", ".join(v["versions"]) or "-",
            f"{v['requests']:,}",
            "-" if p95 is None else f"{p95:.1f}",
            f"{v['labelled']:,}",
            accuracy,
        )
    console.print(table)
    for c in result["comparisons"]:
        console.print(
            f"{c['treatment']} vs {c['control']}: p = {c['p_value']:.4f} -> {c['verdict']}",
            highlight=False,
        )
    rec = result["recommendation"]
    console.print(f"[bold]recommendation: {rec['verdict']}[/] ({rec['why']})", highlight=False)
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)
