"""What the console's Deployments, Monitoring and Jobs pages show, gathered from the services.

Plain functions returning dicts (no HTML): the page handlers in `console/pages/` render them.
Every read is bounded (the latest N rows of a table, never a whole table) so a page stays fast
on a busy database. Drift and quality "over time" are computed from what the platform stored
(the prediction log's features, the feedback labels), split into consecutive slices, so they
agree across workers and survive a restart; the current drift verdict is the live monitor's
when its window is warm.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from mloop.deploy.report import build_report
from mloop.deploy.service import DeploymentService
from mloop.errors import NotFoundError, UserError, ValidationError
from mloop.jobs.queue import JobQueue
from mloop.monitoring.live import _score_threshold  # the live monitor's rule, reused
from mloop.monitoring.quality import REGRESSION, regression_quality
from mloop.stats.binned import compare
from mloop.stats.counts import WindowCounts
from mloop.stats.profile import ReferenceProfile
from mloop.store import Database, PredictionRecord
from mloop.store.monitoring import FeedbackRecord

HISTORY_SHOWN = 20  # latest revisions on a deployment page
DRIFT_ROWS = 3000  # latest logged predictions the drift-over-time chart reads
QUALITY_LABELS = 2000  # latest labels the quality-over-time chart reads
SLICES = 6  # points on an "over time" chart
JOBS_SHOWN = 100
ALERTS_SHOWN = 20

# ------------------------------------------------------------------------------ deployments


def deployment_list(service: DeploymentService) -> list[dict[str, Any]]:
    """Each deployment: name, policy, revision, variants with their traffic share."""
    out = []
    for found in service.list():
        status = service.status(found.name)
        out.append(
            {
                "name": found.name,
                "policy": status["policy"],
                "revision": found.revision,
                "default": found.is_default,
                "updated_at": found.updated_at,
                "updated_by": found.updated_by,
                "variants": [_variant_row(v) for v in status["variants"]],
                "status": _health(status["variants"]),
            }
        )
    return out


def deployment_detail(
    service: DeploymentService, name: str, live: Any = None, min_labels: int = 30
) -> dict[str, Any]:
    """Status, actions available, A/B report and the latest revisions of one deployment."""
    status = service.status(name, live)  # NotFoundError naming the known deployments
    _, spec = service.get(name)
    history = service.history(name)
    counts = live.snapshot(name) if live is not None else None
    report = build_report(
        service.records.database, spec, history, live=counts, min_labels=min_labels
    )
    variants = [_variant_row(v) for v in status["variants"]]
    return {
        "name": name,
        "policy": status["policy"],
        "revision": status["revision"],
        "default": status["default"],
        "updated_at": status["updated_at"],
        "updated_by": status["updated_by"],
        "canary": status["canary"],
        "variants": variants,
        "status": _health(status["variants"]),
        "report": report,
        "history": [r.to_dict() for r in reversed(history[-HISTORY_SHOWN:])],
        "actions": available_actions(status["policy"], spec.candidate, len(history)),
        "candidate": spec.candidate,
    }


def available_actions(policy: str, candidate: str | None, revisions: int) -> dict[str, bool]:
    """Which action forms make sense for this deployment now (the service decides anyway)."""
    return {
        "promote": policy not in ("single", "blue_green"),
        "switch": policy == "blue_green",
        "shift": policy in ("ab", "canary", "shadow"),
        "rollback": revisions > 1,
    }


def parse_share(text: str) -> float:
    """A traffic share typed in a form: a number from 0 to 100 (ValidationError otherwise)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValidationError(f"the share must be a number from 0 to 100, got {text!r}") from None
    if not 0 <= value <= 100:  # also refuses NaN
        raise ValidationError(f"the share must be from 0 to 100, got {text}")
    return value


def _variant_row(variant: dict[str, Any]) -> dict[str, Any]:
    return {
        "variant": variant["variant"],
        "model": variant["model"],
        "version": variant["version"],
        "share": variant["share"],
        "role": variant["role"],
        "error": variant["error"],
    }


def _health(variants: list[dict[str, Any]]) -> str:
    broken = [v["variant"] for v in variants if v.get("error")]
    return f"broken: {', '.join(broken)}" if broken else "ok"


# ------------------------------------------------------------------------------- monitoring


def logged_features(
    database: Database, name: str, version: str, limit: int = DRIFT_ROWS
) -> list[tuple[datetime, dict[str, Any]]]:
    """(time, features) of the latest `limit` logged predictions of a version, oldest first."""
    query = (
        select(PredictionRecord.created_at, PredictionRecord.features)
        .where(PredictionRecord.model_name == name, PredictionRecord.model_version == version)
        .order_by(PredictionRecord.created_at.desc())
        .limit(limit)
    )
    with database.session() as session:
        rows = session.execute(query).all()
    return [(created, features) for created, features in reversed(rows) if features]


def slices(items: list[Any], count: int = SLICES) -> list[list[Any]]:
    """`items` cut into at most `count` consecutive, nearly equal, non-empty slices."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return [chunk for chunk in out if chunk]


def slice_counts(
    profile: ReferenceProfile, rows: list[tuple[datetime, dict[str, Any]]], count: int = SLICES
) -> list[tuple[datetime, WindowCounts]]:
    """(end time, counts on the profile's bins) of each slice of the logged rows.

    One DataFrame for all rows, each row counted once: the slices' counts add up to the whole
    window's (`sum_counts`), so the drift chart and the current verdict share one pass.
    """
    if not rows:
        return []
    frame = pd.DataFrame([f for _, f in rows])
    out, start = [], 0
    for chunk in slices(rows, count):
        part = frame.iloc[start : start + len(chunk)].reset_index(drop=True)
        out.append((chunk[-1][0], profile.counts(part)))
        start += len(chunk)
    return out


def sum_counts(counted: list[tuple[datetime, WindowCounts]]) -> WindowCounts:
    """The counts of every slice together: those of the whole window."""
    total = counted[0][1]
    for _, counts in counted[1:]:
        total = total + counts
    return total


def drift_over_time(
    profile: ReferenceProfile,
    rows: list[tuple[datetime, dict[str, Any]]],
    count: int = SLICES,
    counted: list[tuple[datetime, WindowCounts]] | None = None,
) -> dict[str, Any]:
    """Per slice of logged rows: its end time and each feature's drift score and threshold
    (`counted`: the rows' `slice_counts`, when the caller has them already)."""
    times: list[str] = []
    series: dict[str, list[float | None]] = {name: [] for name in profile.features}
    thresholds: dict[str, float] = {}
    for end, counts in slice_counts(profile, rows, count) if counted is None else counted:
        result = compare(profile, counts)
        times.append(end.isoformat())
        scores = {c.column: c for c in result.columns}
        for name in series:
            column = scores.get(name)
            series[name].append(column.score if column is not None else None)
            if column is not None:
                thresholds[name] = _score_threshold(column)
    return {"times": times, "series": series, "thresholds": thresholds}


def current_drift(
    profile: ReferenceProfile,
    rows: list[tuple[datetime, dict[str, Any]]],
    live: Any = None,
    counted: list[tuple[datetime, WindowCounts]] | None = None,
) -> dict[str, Any]:
    """The current verdict per feature: the live window's if warm, else the logged rows'
    (`counted`: the rows' `slice_counts`, summed instead of counting the rows again)."""
    if live and live.get("status") == "ok":
        source, rows_count, columns = "live window", live["rows"], live["columns"]
    elif rows:
        window = sum_counts(counted) if counted else profile.counts(_frame(rows))
        result = compare(profile, window)
        source, rows_count = f"latest {len(rows)} logged predictions", len(rows)
        columns = {c.column: c.to_dict() for c in result.columns}
    else:
        return {"source": "no traffic yet", "rows": 0, "features": []}
    features = [
        {
            "feature": name,
            "statistic": column.get("statistic"),
            "value": column.get("value"),
            "threshold": column.get("threshold"),
            "drift": bool(column.get("drift_detected")),
            "kind": column.get("type"),
        }
        for name, column in columns.items()
    ]
    return {"source": source, "rows": rows_count, "features": features}


def _frame(rows: list[tuple[datetime, dict[str, Any]]]) -> pd.DataFrame:
    return pd.DataFrame([f for _, f in rows])


def feature_histogram(
    profile: ReferenceProfile, rows: list[tuple[datetime, dict[str, Any]]], feature: str
) -> dict[str, Any]:
    """Reference vs current counts of one feature on the reference profile's bins."""
    if feature not in profile.features:
        raise NotFoundError(
            f"no feature '{feature}' in the reference profile",
            hint=f"features: {', '.join(sorted(profile.features))}",
        )
    prof = profile.features[feature]
    frame = pd.DataFrame([f for _, f in rows]) if rows else pd.DataFrame({feature: []})
    column = next(
        (c for c in compare(profile, profile.counts(frame)).columns if c.column == feature), None
    )
    reference = [int(n) for n in prof.reference_counts().counts]
    labels = [str(label) for label in prof.bin_labels()]
    current = [0] * len(reference)
    if column is not None and column.histogram.get("current"):
        current = list(column.histogram["current"])
    return {
        "feature": feature,
        "kind": prof.kind,
        "labels": labels,
        "reference": reference,
        "current": current,
        "rows": len(rows),
        "verdict": None if column is None else column.to_dict(),
    }


def quality_over_time(
    database: Database, name: str, version: str, task: str | None, limit: int = QUALITY_LABELS
) -> dict[str, Any]:
    """Accuracy (or MAE for regressors) per slice of the latest labels, oldest first."""
    query = (
        select(
            FeedbackRecord.received_at,
            FeedbackRecord.actual,
            FeedbackRecord.prediction,
            FeedbackRecord.probability,
        )
        .where(FeedbackRecord.model_name == name, FeedbackRecord.model_version == version)
        .order_by(FeedbackRecord.received_at.desc())
        .limit(limit)
    )
    with database.session() as session:
        rows = list(reversed(session.execute(query).all()))
    metric = "mae" if task == REGRESSION else "accuracy"
    times, values = [], []
    for chunk in slices(rows):
        actual, predicted = [r[1] for r in chunk], [r[2] for r in chunk]
        if metric == "mae":
            value = regression_quality(actual, predicted).get("mae")
        else:
            value = accuracy(actual, predicted)
        times.append(chunk[-1][0].isoformat())
        values.append(value)
    return {"metric": metric, "times": times, "values": values, "labels": len(rows)}


def accuracy(actual: list[Any], predicted: list[Any]) -> float | None:
    """The share of labels equal to the prediction, compared as text as `classification_quality`
    does; only the accuracy (the chart's one metric), not its full set of sklearn metrics."""
    if not actual:
        return None
    return sum(str(a) == str(p) for a, p in zip(actual, predicted, strict=True)) / len(actual)


def firing_alerts(alerts: Any, limit: int = ALERTS_SHOWN) -> list[dict[str, Any]]:
    """The latest alerts received that are still firing (newest first)."""
    if alerts is None:
        return []
    return [a for a in alerts.recent(limit) if a["status"] == "firing"]


def parse_prediction_id(text: str) -> str:
    """A prediction id as `/predict` answers it (a UUID); UserError (400) otherwise."""
    try:
        return str(uuid.UUID(text.strip()))
    except (AttributeError, ValueError):
        raise UserError(
            f"{text[:60]!r} is not a prediction id",
            hint="a prediction id is a UUID such as 0190f1c2-7a3b-7c4d-9e5f-0123456789ab",
        ) from None


def prediction(database: Database, prediction_id: str) -> dict[str, Any]:
    """One logged prediction and its ground-truth label if any (NotFoundError if unknown)."""
    with database.session() as session:
        record = session.get(PredictionRecord, prediction_id)
        if record is None:
            raise NotFoundError(
                f"no logged prediction with id {prediction_id}",
                hint="the prediction log keeps answered rows until retention removes them",
            )
        label = session.get(FeedbackRecord, prediction_id)
        return {
            "id": record.id,
            "created_at": record.created_at,
            "model": record.model_name,
            "version": record.model_version,
            "features": record.features or {},
            "prediction": record.prediction,
            "probability": record.probability,
            "latency_ms": record.latency_ms,
            "out_of_range": record.out_of_range,
            "actual": None if label is None else label.actual,
            "labelled_at": None if label is None else label.received_at,
        }


# ------------------------------------------------------------------------------------- jobs


def job_list(queue: JobQueue, status: str | None = None) -> dict[str, Any]:
    """The newest jobs (no results), and how many are in each status."""
    jobs = queue.list(status=status or None, limit=JOBS_SHOWN)
    return {"jobs": [job.to_dict(result=False) for job in jobs], "counts": queue.counts()}


def job_detail(queue: JobQueue, job_id: str) -> dict[str, Any]:
    """One job with its result summary (NotFoundError if unknown)."""
    job = queue.get(job_id)
    body = job.to_dict(result=False)
    result = job.result or {}
    body["result_summary"] = {k: v for k, v in result.items() if not isinstance(v, list | dict)}
    body["cancellable"] = not job.finished
    return body
