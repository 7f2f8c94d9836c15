"""`GET /monitor/drift` (the live window), `POST /monitor/drift` (rows sent now),
`GET /monitor/quality` (live quality from ground truth).

Both drift routes compare against the reference profile logged with the served version's
training run, on its bins: the live window holds counts of every answered row; the POST counts
the posted rows (validated like `/predict/batch`) without predicting or logging them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import NotFoundError, ValidationError
from mloop.monitoring.service import monitoring_service
from mloop.security.access import Role, requires
from mloop.serving.api_models import ERRORS, errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_object, read_body
from mloop.serving.handlers import json_response
from mloop.serving.state import serving_state
from mloop.stats.binned import compare

router = APIRouter(route_class=AuthFirstRoute, tags=["monitoring"], responses=errors(400, 404))
MAX_DRIFT_ROWS = 100_000


@router.get("/monitor/drift", responses=ERRORS, dependencies=[requires(Role.VIEWER)])
async def live_drift(
    request: Request,
    version: str | None = Query(None, description="A model version; default: the served one."),
) -> Response:
    """The live window's drift report for the served version (or `version`)."""
    service = monitoring_service(request)
    model = serving_state(request).runtime.require()
    if service.drift is None:
        raise NotFoundError("live drift monitoring is off", hint="set MLOOP_MONITORING=true")
    wanted = version or model.version
    reports = await run_in_threadpool(_live_report, service, model.name, wanted)
    if not reports:
        return json_response(
            {
                "model_name": model.name,
                "model_version": wanted,
                "status": "no_traffic",
                "rows": 0,
                "reason": "no prediction answered by this version yet",
            }
        )
    return json_response(reports[0])


def _live_report(service: Any, name: str, version: str) -> list[dict[str, Any]]:
    service.drift.flush()  # count what was answered up to now
    return service.drift.report(name, version)


@router.post("/monitor/drift", responses=ERRORS, dependencies=[requires(Role.PREDICTOR)])
async def drift_of_rows(request: Request) -> Response:
    """Drift of the rows in `{"instances": [row, ...]}` against the served version's profile."""
    state = serving_state(request)
    service = monitoring_service(request)
    model = state.runtime.require()
    body = await read_body(request, state.settings.max_body_bytes)
    rows = parse_object(body, key="instances", many=True, columns=model.schema.names)
    if not isinstance(rows, list) or not rows:
        raise ValidationError("'instances' must be a non-empty array of rows")
    if len(rows) > MAX_DRIFT_ROWS:
        raise ValidationError(f"'instances' has {len(rows)} rows, over {MAX_DRIFT_ROWS}")
    report = await run_in_threadpool(_rows_report, service, model, rows)
    return json_response(report)


def _rows_report(service: Any, model: Any, rows: list[Any]) -> dict[str, Any]:

    profile, _ = service.profile_for(model.name, model.version)
    if profile is None:
        raise NotFoundError(
            f"{model.name}/{model.version} has no reference profile",
            hint="models trained by `mloop train` log one; retrain to get it",
        )
    frame = model.schema.to_frame(rows)
    result = compare(profile, profile.counts(frame))
    return {"model_name": model.name, "model_version": model.version, **result.to_dict()}


@router.get("/monitor/quality", responses=ERRORS, dependencies=[requires(Role.VIEWER)])
async def live_quality(
    request: Request,
    version: str | None = Query(None, description="A model version; default: the served one."),
) -> Response:
    """Quality over the latest labels of the served version (or `version`), and degradation."""
    service = monitoring_service(request)
    model = serving_state(request).runtime.require()
    wanted = version or model.version
    classes = service.served_classes(model.name, wanted)
    report = await run_in_threadpool(service.quality.refresh, model.name, wanted, classes)
    return json_response(report.to_dict())
