"""Console Monitoring: drift per feature over time, one feature's reference-vs-current
histogram, quality from ground truth over time, firing alerts, and a prediction lookup by id.

The model shown is the one this server answers `/predict` with (or `?model=&version=`).
Everything is read-only (viewer).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from mloop.errors import NotFoundError, ServiceUnavailableError
from mloop.monitoring.service import MonitoringService
from mloop.serving.console import views
from mloop.serving.console.web import ConsoleUser, current_user, render, state
from mloop.store import open_database

router = APIRouter()


def _monitoring(request: Request) -> MonitoringService:
    service = state(request).monitoring
    if service is None or not service.started:
        raise ServiceUnavailableError(
            "this server runs without monitoring", hint="start it with MLOOP_MONITORING=true"
        )
    return service


def _model(request: Request, model: str | None, version: str | None) -> tuple[str, str] | None:
    """(name, version) to show: the query's, else the served model's; None if neither."""
    served = state(request).runtime.model
    name = model or (served.name if served is not None else None)
    if name is None:
        return None
    if version is None:
        if served is None or served.name != name:
            raise NotFoundError(f"give ?version= for model '{name}' (this server serves another)")
        version = served.version
    return name, version


def _gather(
    service: MonitoringService, settings: Any, name: str, version: str
) -> tuple[Any, list[Any], dict[str, Any] | None]:
    """The version's reference profile, its latest logged features and the live report."""
    profile, _ = service.profile_for(name, version)
    rows = views.logged_features(open_database(settings), name, version)
    live = None
    if service.drift is not None:
        live = next(iter(service.drift.report(name, version)), None)
    return profile, rows, live


@router.get("/ui/monitoring")
async def overview(
    request: Request,
    model: str | None = Query(None, max_length=255),
    version: str | None = Query(None, max_length=64),
    user: ConsoleUser = Depends(current_user),
):
    """Drift per feature (now and over time), quality over time, firing alerts."""
    chosen = _model(request, model, version)
    if chosen is None:
        return render(request, "monitoring.html", {"model": None})
    service = _monitoring(request)
    name, version = chosen

    def gather() -> dict[str, Any]:
        profile, rows, live = _gather(service, state(request).settings, name, version)
        served = state(request).runtime.model
        classes = served.classes if served is not None and served.version == version else None
        quality = service.quality.report(name, version, classes)
        context: dict[str, Any] = {
            "model": name,
            "version": version,
            "profile": profile is not None,
            "quality": quality.to_dict(),
            "quality_chart": _quality_figure(
                views.quality_over_time(
                    open_database(state(request).settings), name, version, quality.task
                )
            ),
            "alerts": views.firing_alerts(service.alerts),
        }
        if profile is not None:
            counted = views.slice_counts(profile, rows)  # each logged row counted once
            context["drift"] = views.current_drift(profile, rows, live, counted)
            timeline = views.drift_over_time(profile, rows, counted=counted)
            context["drift_chart"] = _drift_figure(timeline)
        return context

    return render(request, "monitoring.html", await run_in_threadpool(gather))


@router.get("/ui/monitoring/features/{feature}")
async def feature_page(
    request: Request,
    feature: str,
    model: str | None = Query(None, max_length=255),
    version: str | None = Query(None, max_length=64),
    user: ConsoleUser = Depends(current_user),
):
    """One feature: reference vs current histogram on the reference bins, and its verdict."""
    chosen = _model(request, model, version)
    if chosen is None:
        raise NotFoundError("this server serves no model: give ?model=&version=")
    service = _monitoring(request)
    name, version = chosen

    def gather() -> dict[str, Any]:
        profile, rows, _ = _gather(service, state(request).settings, name, version)
        if profile is None:
            raise NotFoundError(f"{name}/{version} has no reference profile")
        histogram = views.feature_histogram(profile, rows, feature)
        return {
            "model": name,
            "version": version,
            "h": histogram,
            "figure": _histogram_figure(histogram),
        }

    return render(request, "monitoring_feature.html", await run_in_threadpool(gather))


@router.get("/ui/monitoring/predictions")
async def prediction_page(
    request: Request,
    prediction_id: str | None = Query(None, alias="id", max_length=200),
    user: ConsoleUser = Depends(current_user),
):
    """Look up one logged prediction by id: 400 for a malformed id, 404 for an unknown one."""
    if not prediction_id:
        return render(request, "monitoring_prediction.html", {"p": None, "query": ""})
    wanted = views.parse_prediction_id(prediction_id)
    database = open_database(state(request).settings)
    found = await run_in_threadpool(views.prediction, database, wanted)
    return render(request, "monitoring_prediction.html", {"p": found, "query": wanted})


# ---------------------------------------------------------------------------------- charts


def _drift_figure(timeline: dict[str, Any]) -> dict[str, Any] | None:
    if not timeline["times"]:
        return None
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "name": name, "x": timeline["times"], "y": ys}
        for name, ys in timeline["series"].items()
    ]
    thresholds = set(timeline["thresholds"].values())
    if len(thresholds) == 1:
        value = thresholds.pop()
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "threshold",
                "x": [timeline["times"][0], timeline["times"][-1]],
                "y": [value, value],
                "line": {"dash": "dash", "color": "#d62728"},
            }
        )
    layout = {"yaxis": {"title": {"text": "drift score"}}, "height": 360}
    return {"data": data, "layout": layout}


def _quality_figure(series: dict[str, Any]) -> dict[str, Any] | None:
    if not series["times"]:
        return None
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": series["metric"],
        "x": series["times"],
        "y": series["values"],
    }
    layout = {"yaxis": {"title": {"text": series["metric"]}}, "height": 300}
    return {"data": [trace], "layout": layout}


def _histogram_figure(h: dict[str, Any]) -> dict[str, Any]:
    """Shares (not counts) so a small live window compares with a big training set."""

    def shares(counts: list[int]) -> list[float]:
        total = sum(counts)
        return [c / total if total else 0.0 for c in counts]

    data = [
        {"type": "bar", "name": "reference", "x": h["labels"], "y": shares(h["reference"])},
        {"type": "bar", "name": "current", "x": h["labels"], "y": shares(h["current"])},
    ]
    layout = {"barmode": "group", "yaxis": {"title": {"text": "share of rows"}}, "height": 360}
    return {"data": data, "layout": layout}
