"""Promotion gates, computed by mloop from what was recorded, never taken from a request.

- metrics: thresholds checked against the metrics of the version's MLflow run;
- validation: the model test suite on the rebuilt held-out split (governance/validation.py);
- model_card: a card was written for the version, with an owner and an intended use;
- drift: PSI of the evaluation data (the policy's file, else the held-out split) against the
  training split, under `max_psi` for every feature (`mloop.stats`' PSI, see drift.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from mloop.errors import MloopError
from mloop.governance.policies import Gates
from mloop.registry.records import VersionDetails
from mloop.settings import Settings

CARD_TAG = "mloop.card_sha256"
OWNER_TAG = "mloop.owner"
USE_TAG = "mloop.intended_use"

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict and the measured facts behind it."""

    gate: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": bool(self.passed), "detail": self.detail}


def run_gates(settings: Settings, details: VersionDetails, gates: Gates) -> list[GateResult]:
    """Every configured gate's result, in a fixed order (metrics, validation, card, drift)."""
    results: list[GateResult] = []
    for metric, bound in gates.metrics.items():
        results.append(_metric(details, metric, bound.min, bound.max))
    held = None
    if gates.validation is not None or gates.drift is not None:
        # lazy: +1.4 s (mloop.pipeline: sklearn, pandas) for the CLI commands that load governance
        from mloop.governance.validation import held_out

        try:
            held = held_out(details)
        except MloopError as exc:
            held = exc
    if gates.validation is not None:
        results.extend(_validation(settings, details, gates, held))
    if gates.model_card:
        results.append(card_gate(details))
    if gates.drift is not None:
        results.append(_drift(details, gates, held))
    return results


def _metric(
    details: VersionDetails, metric: str, low: float | None, high: float | None
) -> GateResult:
    gate = f"metric.{metric}"
    value = details.metrics.get(metric)
    if value is None:
        known = ", ".join(sorted(details.metrics)) or "none"
        return GateResult(
            gate, False, f"{metric} is not recorded in run {details.run_id} (recorded: {known})"
        )
    parts = []
    ok = True
    if low is not None:
        ok &= value >= low
        parts.append(f">= {low:g}")
    if high is not None:
        ok &= value <= high
        parts.append(f"<= {high:g}")
    return GateResult(gate, bool(ok), f"{metric} = {value:.4f}, required {' and '.join(parts)}")


def _validation(
    settings: Settings, details: VersionDetails, gates: Gates, held: Any
) -> list[GateResult]:
    if isinstance(held, MloopError):
        return [GateResult("validation", False, held.message)]
    # lazy: +1.4 s (mloop.pipeline: sklearn, pandas) for the CLI commands that load governance
    from mloop.governance.validation import run_suite

    # lazy: +0.4 s (model loader, pandas) for the CLI commands that load governance
    from mloop.registry.resolve import load_model

    spec = gates.validation
    assert spec is not None
    try:
        model = load_model(f"models:/{details.name}/{details.version}", settings)
    except MloopError as exc:
        return [GateResult("validation", False, f"cannot load the model: {exc.message}")]
    checks = run_suite(
        model,
        held.X_test,
        latency_ms=spec.latency_ms,
        missing_rate=spec.missing_rate,
        latency_calls=spec.latency_calls,
    )
    return [GateResult(f"validation.{c.name}", c.passed, c.detail) for c in checks]


def card_gate(details: VersionDetails) -> GateResult:
    """Passed when `mloop models card` wrote a card with an owner and an intended use."""
    tags = details.tags
    missing = [
        what
        for what, tag in (
            ("a card", CARD_TAG),
            ("an owner", OWNER_TAG),
            ("an intended use", USE_TAG),
        )
        if not tags.get(tag)
    ]
    if missing:
        return GateResult(
            "model_card",
            False,
            f"{details.name}/{details.version} has no model card: missing {', '.join(missing)} "
            f"(write one: mloop models card {details.name}/{details.version} --owner NAME "
            "--intended-use TEXT)",
        )
    return GateResult(
        "model_card", True, f"card {tags[CARD_TAG][:12]}... owned by {tags[OWNER_TAG]}"
    )


def _drift(details: VersionDetails, gates: Gates, held: Any) -> GateResult:
    if isinstance(held, MloopError):
        return GateResult("drift", False, held.message)
    spec = gates.drift
    assert spec is not None
    current, source = held.X_test, "the held-out split"
    if spec.data:
        try:
            current, source = _evaluation_frame(details, spec.data), spec.data
        except MloopError as exc:
            return GateResult("drift", False, f"evaluation data {spec.data}: {exc.message}")
    return drift_gate(held.X_train, current, spec.max_psi, source, date_columns=held.date_columns)


def drift_gate(
    train: pd.DataFrame,
    current: pd.DataFrame,
    max_psi: float,
    source: str,
    *,
    date_columns: Sequence[str] = (),
) -> GateResult:
    """Passed when every feature's PSI of `current` against `train` is under `max_psi`.

    The PSI is `mloop.governance.drift.psi_drift`'s (the statistics of `mloop drift`).
    """
    # lazy: +1.0 s (scipy, pandas) for the CLI commands that load governance
    from mloop.governance.drift import psi_drift

    # Dates move forward by nature: they are compared through their derived parts, not here.
    reference = train.drop(columns=list(date_columns), errors="ignore")
    reference = reference.select_dtypes(exclude=["datetime", "datetimetz"])
    try:
        result = psi_drift(reference, current, max_psi)
    except MloopError as exc:
        return GateResult("drift", False, f"{source}: {exc.message}")
    if not result.columns:
        return GateResult("drift", False, f"no feature of the training data is in {source}")
    over = sorted(c.column for c in result.columns if c.drift_detected)
    scored = [c for c in result.columns if c.value is not None]
    if scored:
        worst = max(scored, key=lambda c: float(c.value or 0.0))
        measured = f"max PSI {worst.value:.3f} ({worst.column})"
    else:
        measured = "no PSI (no values on one side)"
    detail = f"{measured} of {source} against the training split, limit {max_psi:g}"
    if over:
        detail += f"; at or over the limit: {', '.join(over)}"
    return GateResult("drift", not over, detail)


def _evaluation_frame(details: VersionDetails, path: str) -> Any:
    # lazy: +0.3 s (pandas) for the CLI commands that load governance
    from mloop.data.io import read_table

    # lazy: +1.4 s (mloop.pipeline: sklearn, pandas) for the CLI commands that load governance
    from mloop.pipeline import dataset

    # lazy: +1.4 s (mloop.pipeline: sklearn, pandas) for the CLI commands that load governance
    from mloop.pipeline.config import config_from_dict

    config = config_from_dict(yaml.safe_load(details.lineage["mloop.config"]))
    return dataset.prepare(read_table(path), config, source=path).X


def failed(results: list[GateResult]) -> list[GateResult]:
    return [result for result in results if not result.passed]
