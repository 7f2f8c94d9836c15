"""A/B analysis of a deployment: traffic, latency and (with ground truth) accuracy per variant.

Predictions are attributed to variants by version: each revision in the deployment's history
recorded which version every variant's reference resolved to, and a logged prediction made
while that revision was current, by that version, belongs to that variant. Labels come from
the monitoring feedback table, which copies each labelled prediction's version, time and
answer. Accuracy gets a Wilson 95% interval, and each treatment is compared with the control
(the primary variant) by a two-proportion z-test; the report ends with a plain
recommendation: promote, keep, or not yet significant.

The counts (requests, labelled, correct, latency sum) are aggregates computed in SQL, so a
report reads a few rows per variant however long the log: the significance is exact. The
latency p50/p95 come from the newest LATENCY_SAMPLE predictions of each variant (a bounded
read); the mean is over all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.stats import norm
from sqlalchemy import Text, case, cast, func, select

from mloop.deploy.records import Revision
from mloop.deploy.spec import DeploymentSpec
from mloop.store import Database
from mloop.store.models import PredictionRecord
from mloop.store.monitoring import FeedbackRecord

ALPHA = 0.05
LATENCY_SAMPLE = 10_000  # latency quantiles from at most this many newest predictions
Z95 = 1.959963984540054


@dataclass
class VariantStats:
    variant: str
    versions: list[str] = field(default_factory=list)
    requests: int = 0
    errors: int | None = None  # only a live server counts failed requests
    latency_sum: float = 0.0  # over every request
    latencies: list[float] = field(default_factory=list)  # the newest LATENCY_SAMPLE
    labelled: int = 0
    correct: int = 0

    def to_dict(self) -> dict[str, Any]:
        low, high = wilson(self.correct, self.labelled)
        return {
            "variant": self.variant,
            "versions": self.versions,
            "requests": self.requests,
            "errors": self.errors,
            "latency_ms": {
                "mean": self.latency_sum / self.requests if self.requests else None,
                "p50": _quantile(self.latencies, 0.5),
                "p95": _quantile(self.latencies, 0.95),
            },
            "labelled": self.labelled,
            "accuracy": self.correct / self.labelled if self.labelled else None,
            "accuracy_ci95": [low, high] if self.labelled else None,
        }


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for H0: p1 == p2, pooled; (0, 1) when undefined."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (s2 / n2 - s1 / n1) / se
    return z, float(2 * norm.sf(abs(z)))


def build_report(
    database: Database,
    spec: DeploymentSpec,
    history: list[Revision],
    *,
    live: dict[str, dict[str, float]] | None = None,
    min_labels: int = 30,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see module docstring)."""
    stats = {v.name: VariantStats(v.name) for v in spec.variants}
    for variant, spans in _spans(history).items():
        found = stats.setdefault(variant, VariantStats(variant))
        for _, version, _, _ in spans:
            if version not in found.versions:
                found.versions.append(version)
        with database.session() as session:
            for span in spans:
                _count(session, found, *span)
            for span in reversed(spans):  # the newest first, until the sample is full
                _sample(session, found, *span)
    for variant, counts in (live or {}).items():
        if variant in stats and "errors" in counts:
            stats[variant].errors = int(counts["errors"])
    control = spec.primary
    comparisons = [
        _compare(stats[control], stats[name], min_labels)
        for name in stats
        if name != control and control in stats
    ]
    return {
        "deployment": spec.name,
        "policy": spec.policy.value,
        "generated_at": datetime.now(UTC).isoformat(),
        "control": control,
        "variants": [s.to_dict() for s in stats.values()],
        "comparisons": comparisons,
        "recommendation": _overall(comparisons),
    }


def _windows(history: list[Revision]) -> list[tuple[datetime, datetime | None, dict[str, Any]]]:
    """(start, end, resolved) per revision: the time each revision was current."""
    out = []
    for index, revision in enumerate(history):
        end = history[index + 1].created_at if index + 1 < len(history) else None
        if revision.resolved:
            out.append((revision.created_at, end, revision.resolved))
    return out


Span = tuple[str, str, datetime, datetime | None]  # model, version, from, until


def _spans(history: list[Revision]) -> dict[str, list[Span]]:
    """Per variant, the time ranges a (model, version) answered for it, oldest first; the
    consecutive revisions that kept a variant's version (a canary's steps) make one range."""
    out: dict[str, list[Span]] = {}
    for start, end, resolved in _windows(history):
        for variant, model in resolved.items():
            spans = out.setdefault(variant, [])
            key = (model["name"], str(model.get("version")))
            if spans and spans[-1][:2] == key and spans[-1][3] == start:
                spans[-1] = (*key, spans[-1][2], end)
            else:
                spans.append((*key, start, end))
    return out


def _where(
    table: Any, at: Any, model: str, version: str, start: datetime, end: datetime | None
) -> list[Any]:
    conditions = [table.model_name == model, table.model_version == version, at >= start]
    if end is not None:
        conditions.append(at < end)
    return conditions


def _count(
    session: Any, stats: VariantStats, model: str, version: str, start: datetime, end: Any
) -> None:
    """Requests, latency sum, labels and correct answers of one span: two aggregate rows.

    Labels are counted from the feedback table alone (it copies the prediction's version,
    time and answer, so no join); a label is correct when its JSON equals the prediction's,
    compared as text so it works on PostgreSQL's `json` too (`/feedback` stores a label in
    the type the model predicts).
    """
    latency_sum = func.coalesce(func.sum(PredictionRecord.latency_ms), 0.0)
    logged = _where(PredictionRecord, PredictionRecord.created_at, model, version, start, end)
    requests, latency = session.execute(select(func.count(), latency_sum).where(*logged)).one()
    same = cast(FeedbackRecord.actual, Text) == cast(FeedbackRecord.prediction, Text)
    correct = func.coalesce(func.sum(case((same, 1), else_=0)), 0)
    labels = _where(FeedbackRecord, FeedbackRecord.predicted_at, model, version, start, end)
    labelled, right = session.execute(select(func.count(), correct).where(*labels)).one()
    stats.requests += int(requests)
    stats.latency_sum += float(latency)
    stats.labelled += int(labelled)
    stats.correct += int(right)


def _sample(
    session: Any, stats: VariantStats, model: str, version: str, start: datetime, end: Any
) -> None:
    """The newest latencies of one span, while the variant's sample has room."""
    room = LATENCY_SAMPLE - len(stats.latencies)
    if room <= 0:
        return
    query = (
        select(PredictionRecord.latency_ms)
        .where(*_where(PredictionRecord, PredictionRecord.created_at, model, version, start, end))
        .order_by(PredictionRecord.created_at.desc())
        .limit(room)
    )
    stats.latencies.extend(float(latency) for (latency,) in session.execute(query))


def _compare(control: VariantStats, other: VariantStats, min_labels: int) -> dict[str, Any]:
    z, p = two_proportion_z(control.correct, control.labelled, other.correct, other.labelled)
    diff = None
    if control.labelled and other.labelled:
        diff = other.correct / other.labelled - control.correct / control.labelled
    if min(control.labelled, other.labelled) < min_labels:
        verdict = "not yet significant"
        why = (
            f"{min(control.labelled, other.labelled)} labelled predictions in the smaller "
            f"variant; {min_labels} needed"
        )
    elif p >= ALPHA:
        verdict = "not yet significant"
        why = f"p = {p:.3f} >= {ALPHA}"
    elif (diff or 0) > 0:
        verdict = "promote"
        why = f"'{other.variant}' is {diff:+.1%} more accurate (p = {p:.4f})"
    else:
        verdict = "keep"
        why = f"'{other.variant}' is {diff:+.1%} less accurate (p = {p:.4f})"
    return {
        "control": control.variant,
        "treatment": other.variant,
        "accuracy_difference": diff,
        "z": z,
        "p_value": p,
        "verdict": verdict,
        "why": why,
    }


def _overall(comparisons: list[dict[str, Any]]) -> dict[str, str]:
    if not comparisons:
        return {"verdict": "keep", "why": "one variant: nothing to compare"}
    promote = [c for c in comparisons if c["verdict"] == "promote"]
    if promote:
        best = max(promote, key=lambda c: c["accuracy_difference"])
        return {"verdict": f"promote {best['treatment']}", "why": best["why"]}
    if all(c["verdict"] == "keep" for c in comparisons):
        return {"verdict": f"keep {comparisons[0]['control']}", "why": comparisons[0]["why"]}
    pending = next(c for c in comparisons if c["verdict"] == "not yet significant")
    return {"verdict": "not yet significant", "why": pending["why"]}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None

    return float(np.quantile(np.asarray(values), q))
