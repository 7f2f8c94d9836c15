"""`mloop skew NAME@ALIAS`: train/serve skew, the training profile against what was served.

The reference profile logged with the version's training run and the latest rows the
prediction log holds for that version are compared per feature on the profile's bins with the
same statistics as live drift (`mloop.stats.binned.compare`); the live monitor exports the
same comparison as `mloop_feature_skew{model,version,feature}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mloop.cli.console import console
from mloop.errors import NotFoundError, ValidationError


def skew(
    model: str = typer.Argument(..., help="NAME@alias or NAME/VERSION of a served version."),
    rows: int = typer.Option(
        10_000, "--rows", "-n", min=1, help="Compare the latest N logged predictions."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the HTML report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON result here."),
    method: str = typer.Option(
        "auto", "--method", help="auto, wasserstein_normed, jensen_shannon, psi or chi_squared."
    ),
) -> None:
    """Train/serve skew per feature: the training profile against the served rows.

    Example: mloop skew churn@production --rows 5000 --out skew.html
    """
    from mloop.monitoring.report_html import render  # lazy: +89 ms at CLI start-up
    from mloop.registry.profile_store import load_profile  # lazy: +1.3 s at CLI start-up
    from mloop.registry.service import Registry  # lazy: +0.3 s at CLI start-up

    version = Registry().get_version(model)
    profile = load_profile(version.run_id) if version.run_id else None
    if profile is None:
        raise NotFoundError(
            f"model {model} has no reference profile logged with its training run",
            hint="retrain the model with this mloop (training logs the profile)",
        )
    served = served_rows(version.name, str(version.version), rows)
    result = skew_result(profile, served, method=method)
    table = Table(
        title=f"train/serve skew of {version.name} v{version.version} ({len(served)} rows)"
    )
    for column in ("feature", "kind", "statistic", "value", "threshold", "js", "skew", "outside"):
        table.add_column(column)
    for f in result.columns:
        outside = f.unseen if f.kind == "categorical" else f.out_of_range
        table.add_row(
            f.column, f.kind, f.statistic, _num(f.value), _num(f.threshold),
            _num(f.statistics.get("jensen_shannon")),
            "[red]yes[/]" if f.drift_detected else "no", str(outside or 0),
        )  # fmt: skip
    console.print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
        console.print(f"wrote [bold]{json_out}[/]", highlight=False, soft_wrap=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        html = render(
            result,
            reference_name=f"{version.name} v{version.version} (training)",
            current_name=f"served ({len(served)} rows)",
        )
        out.write_text(html, encoding="utf-8")
        console.print(f"wrote [bold]{out}[/]", highlight=False, soft_wrap=True)


def served_rows(name: str, version: str, limit: int) -> Any:
    """The latest `limit` logged inputs of one version, as a DataFrame (newest first)."""
    import pandas as pd  # lazy: +0.4 s at CLI start-up
    from sqlalchemy import select  # lazy: +0.1 s at CLI start-up

    from mloop.store import PredictionRecord, open_database  # lazy: +0.3 s at CLI start-up

    query = (
        select(PredictionRecord.features)
        .where(PredictionRecord.model_name == name, PredictionRecord.model_version == version)
        .order_by(PredictionRecord.created_at.desc())
        .limit(limit)
    )
    with open_database().session() as session:
        features = [f for f in session.scalars(query) if f is not None]
    if not features:
        raise NotFoundError(
            f"the prediction log has no inputs of {name} version {version}",
            hint="serve the version with MLOOP_LOG_INPUTS=true before asking for its skew",
        )
    return pd.DataFrame.from_records(features)


def skew_result(profile: Any, served: Any, *, method: str = "auto") -> Any:
    """`binned.compare` of the served rows' counts on the profile's bins (a DriftResult)."""
    from mloop.stats.binned import compare  # lazy: +1.5 s at CLI start-up

    if not set(profile.features) & set(served.columns):
        raise ValidationError("the served rows have none of the profiled features")
    return compare(profile, profile.counts(served), method=method)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
