"""Model cards: one version's facts as Markdown and self-contained HTML.

Owner, intended use, semantic version and content hash, training data digest (and the DVC md5
when the data is DVC-tracked), code commit, parameters, metrics, validation results,
approvals with identities and times, deployment history and the training run's evaluation
plots (`plots/*.png`: linked beside card.md, embedded in card.html). Writing a card tags the version
(`mloop.card_sha256`, `mloop.owner`, `mloop.intended_use`), which the `model_card` gate checks,
and logs both files to the version's run under `model_card/`.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mloop.errors import MloopError, ValidationError
from mloop.governance.approvals import ApprovalService
from mloop.governance.audit import audit_log
from mloop.governance.gates import CARD_TAG, OWNER_TAG, USE_TAG
from mloop.registry.run_plots import run_plots
from mloop.registry.runs import log_run_artifact
from mloop.registry.semver import CONTENT_TAG, SEMVER_TAG
from mloop.registry.service import Registry
from mloop.settings import Settings

# mloop.pipeline.dvc_lineage.TAG_PREFIX (not imported: mloop.pipeline loads scikit-learn)
DVC_TAG_PREFIX = "mloop.dvc."


@dataclass
class Card:
    name: str
    version: str
    owner: str
    intended_use: str
    facts: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    validation: list[dict[str, Any]]
    validation_note: str
    approvals: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)  # name -> PNG, from the run


def dvc_md5(data_path: str) -> str | None:
    """The md5 DVC recorded for `data_path` (`<file>.dvc`, or a `dvc.lock` above it)."""
    path = Path(data_path)
    sidecar = path.with_name(path.name + ".dvc")
    try:
        if sidecar.is_file():
            outs = (yaml.safe_load(sidecar.read_text()) or {}).get("outs") or []
            return next((o.get("md5") for o in outs if o.get("md5")), None)
        for folder in list(path.parents)[:6]:
            lock = folder / "dvc.lock"
            if lock.is_file():
                stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
                for stage in stages.values():
                    for entry in (stage.get("outs") or []) + (stage.get("deps") or []):
                        if (folder / entry.get("path", "")).resolve() == path.resolve():
                            return entry.get("md5")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return None


def build_card(
    settings: Settings, ref: str, *, owner: str | None = None, intended_use: str | None = None
) -> Card:
    """Gather a version's card; owner and intended use default to those already recorded."""
    registry = Registry(settings)
    details = registry.get_version(ref)
    owner = owner or details.tags.get(OWNER_TAG) or ""
    intended_use = intended_use or details.tags.get(USE_TAG) or ""
    if not owner.strip() or not intended_use.strip():
        raise ValidationError(
            f"the card of {details.name}/{details.version} needs an owner and an intended use",
            hint='--owner alice --intended-use "rank customers by churn risk for retention"',
        )
    lineage = details.lineage
    data_path = lineage.get("mloop.data_path", "")
    facts = {
        "stage": details.stage.value,
        "semantic version": details.tags.get(SEMVER_TAG, "-"),
        "content sha256": details.tags.get(CONTENT_TAG, "-"),
        "model uri": details.uri,
        "run": details.run_id or "-",
        "created": details.created_at.isoformat() if details.created_at else "-",
        "training data": data_path or "-",
        "training data sha256": lineage.get("mloop.data_sha256", "-"),
        "training data DVC md5": (dvc_md5(data_path) if data_path else None) or "-",
        # the dvc.lock hashes the run recorded (mloop.pipeline.dvc_lineage)
        **{
            f"DVC {key.removeprefix(DVC_TAG_PREFIX)}": value
            for key, value in sorted(lineage.items())
            if key.startswith(DVC_TAG_PREFIX)
        },
        "training rows": lineage.get("mloop.data_rows", "-"),
        "code commit": lineage.get("mloop.git_commit", "-"),
        "packages": lineage.get("mloop.package_versions", "-"),
    }
    requests = ApprovalService(settings).for_version(details.name, details.version)
    validation, note = [], ""
    gated = [r for r in requests if r.gates]
    if gated:
        validation, note = gated[-1].gates, f"computed for approval request {gated[-1].id}"
    else:
        # lazy: +1.9 s (pandas, sklearn: mloop.pipeline), only when no approval has the gates
        from mloop.governance.validation import validate_version

        try:
            validation = [
                c.to_dict() | {"gate": f"validation.{c.name}"}
                for c in validate_version(settings, details)
            ]
            note = "computed now on the held-out split"
        except MloopError as exc:
            note = f"not available: {exc.message}"
    approvals = [
        {
            "request": r.id,
            "stage": r.stage,
            "status": r.status,
            "requester": r.requester,
            "submitted": r.created_at.isoformat(),
            **action,
        }
        for r in requests
        for action in r.actions
    ]
    target = f"{details.name}/{details.version}"
    deployments = [
        {
            "at": t.created_at.isoformat(),
            "change": f"{t.from_stage.value} -> {t.to_stage.value}",
            "actor": t.actor,
            "reason": t.reason or "",
        }
        for t in details.history
    ] + [
        {
            "at": row["created_at"],
            "change": row["action"],
            "actor": row["actor"],
            "reason": str(row["detail"]),
        }
        for row in audit_log(settings).rows()
        if row["action"].startswith("deployment.") and target in row["target"]
    ]
    return Card(
        details.name,
        details.version,
        owner.strip(),
        intended_use.strip(),
        facts,
        dict(details.params),
        dict(details.metrics),
        validation,
        note,
        approvals,
        deployments,
        run_plots(settings, details.run_id) if details.run_id else {},
    )


def to_markdown(card: Card) -> str:
    lines = [
        f"# Model card: {card.name} version {card.version}",
        "",
        f"- **Owner:** {card.owner}",
        f"- **Intended use:** {card.intended_use}",
        "",
    ]
    lines += ["## Facts", "", "| | |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in card.facts.items()]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in sorted(card.metrics.items())] or ["| - | - |"]
    lines += ["", "## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in sorted(card.params.items())] or ["| - | - |"]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}](plots/{name}.png)" for name in card.plots] or ["No plots logged."]
    lines += ["", "## Validation", "", f"_{card.validation_note}_", ""]
    if card.validation:
        lines += ["| gate | result | detail |", "|---|---|---|"]
        lines += [
            f"| {g.get('gate', g.get('name'))} | {'pass' if g['passed'] else 'FAIL'} | "
            f"{g['detail']} |"
            for g in card.validation
        ]
    lines += ["", "## Approvals", ""]
    if card.approvals:
        lines += [
            "| request | stage | actor | role | decision | at | comment |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {a['request']} | {a['stage']} | {a['actor']} | {a['role'] or '-'} | "
            f"{a['decision']} | {a['at']} | {a['comment'] or ''} |"
            for a in card.approvals
        ]
    else:
        lines.append("No approvals recorded.")
    lines += ["", "## Deployment history", ""]
    if card.deployments:
        lines += ["| at | change | actor | reason |", "|---|---|---|---|"]
        lines += [
            f"| {d['at']} | {d['change']} | {d['actor']} | {d['reason']} |"
            for d in card.deployments
        ]
    else:
        lines.append("Never deployed.")
    return "\n".join(lines) + "\n"


def _bars(metrics: dict[str, float]) -> str:
    """An inline SVG bar chart of the metrics in [0, 1]."""
    shown = [(k, v) for k, v in sorted(metrics.items()) if 0 <= v <= 1]
    if not shown:
        return ""
    height = 22 * len(shown) + 10
    rows = []
    for i, (key, value) in enumerate(shown):
        y = 5 + 22 * i
        rows.append(
            f'<text x="0" y="{y + 14}" font-size="12">{html.escape(key)}</text>'
            f'<rect x="180" y="{y}" width="{value * 300:.1f}" height="16" fill="#3b82f6"/>'
            f'<text x="{186 + value * 300:.1f}" y="{y + 13}" font-size="11">{value:.3f}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="540" height="{height}" '
        f'role="img" aria-label="metrics">{"".join(rows)}</svg>'
    )


def _images(plots: dict[str, bytes]) -> str:
    """The plots as inline PNG images (data URIs keep the page self-contained)."""
    if not plots:
        return "<p>No plots logged.</p>"
    return "".join(
        f'<figure style="display:inline-block;margin:0 1em 1em 0">'
        f'<img alt="{html.escape(name)}" width="480" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in plots.items()
    )


def to_html(card: Card) -> str:
    def table(headers: list[str], rows: list[list[Any]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>None recorded.</p>"

    validation = [
        [g.get("gate", g.get("name")), "pass" if g["passed"] else "FAIL", g["detail"]]
        for g in card.validation
    ]
    title = f"Model card: {card.name} version {card.version}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#111}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top;font-size:13px}}th{{background:#f3f4f6}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p><b>Owner:</b> {html.escape(card.owner)}<br><b>Intended use:</b> {
        html.escape(card.intended_use)
    }</p>
<h2>Facts</h2>{table(["", ""], [[k, v] for k, v in card.facts.items()])}
<h2>Metrics</h2>{_bars(card.metrics)}
{table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in sorted(card.metrics.items())])}
<h2>Parameters</h2>{table(["parameter", "value"], sorted(card.params.items()))}
<h2>Plots</h2>{_images(card.plots)}
<h2>Validation</h2><p><i>{html.escape(card.validation_note)}</i></p>
{table(["gate", "result", "detail"], validation)}
<h2>Approvals</h2>{
        table(
            ["request", "stage", "actor", "role", "decision", "at", "comment"],
            [
                [
                    a["request"],
                    a["stage"],
                    a["actor"],
                    a["role"] or "-",
                    a["decision"],
                    a["at"],
                    a["comment"] or "",
                ]
                for a in card.approvals
            ],
        )
    }
<h2>Deployment history</h2>{
        table(
            ["at", "change", "actor", "reason"],
            [[d["at"], d["change"], d["actor"], d["reason"]] for d in card.deployments],
        )
    }
</body></html>
"""


def write_card(
    settings: Settings,
    ref: str,
    out: Path,
    *,
    owner: str | None = None,
    intended_use: str | None = None,
    actor: str = "local",
) -> tuple[Card, Path, Path]:
    """Write card.md and card.html under `out`, tag the version and log the files to its run."""
    card = build_card(settings, ref, owner=owner, intended_use=intended_use)
    out.mkdir(parents=True, exist_ok=True)
    markdown, page = out / "card.md", out / "card.html"
    text = to_markdown(card)
    markdown.write_text(text, encoding="utf-8")
    page.write_text(to_html(card), encoding="utf-8")
    if card.plots:  # the images card.md links to
        (out / "plots").mkdir(exist_ok=True)
        for name, png in card.plots.items():
            (out / "plots" / f"{name}.png").write_bytes(png)
    digest = hashlib.sha256(text.encode()).hexdigest()
    Registry(settings).set_tags(
        card.name,
        card.version,
        {OWNER_TAG: card.owner, USE_TAG: card.intended_use, CARD_TAG: digest},
    )
    run_id = card.facts.get("run")
    if run_id and run_id != "-":
        log_run_artifact(settings, run_id, markdown, "model_card")
        log_run_artifact(settings, run_id, page, "model_card")
    audit_log(settings).record(
        actor, "model.card", f"{card.name}/{card.version}", card_sha256=digest, owner=card.owner
    )
    return card, markdown, page
