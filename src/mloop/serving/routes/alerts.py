"""`POST /alerts/webhook` (Alertmanager's receiver), `GET /alerts`, `GET /retrain/jobs`.

The webhook validates the v4 payload (422 naming the field otherwise), commits each alert and
any retraining job it starts, then answers; notifications go out from a background thread.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.monitoring.alerts import parse_payload
from mloop.monitoring.service import monitoring_service
from mloop.security.access import Role, requires
from mloop.serving.api_models import ERRORS, errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json, read_body
from mloop.serving.handlers import json_response
from mloop.serving.state import serving_state

router = APIRouter(route_class=AuthFirstRoute, tags=["monitoring"], responses=errors(400, 404, 409))


@router.post("/alerts/webhook", responses=ERRORS, dependencies=[requires(Role.ML_LEAD)])
async def alert_webhook(request: Request) -> Response:
    """Alertmanager's webhook: record the alerts, notify, start retraining when configured."""
    state = serving_state(request)
    service = monitoring_service(request)
    body = await read_body(request, state.settings.max_body_bytes)
    document, _ = parse_json(body)
    group = parse_payload(document)
    answer = await run_in_threadpool(service.alerts.handle, group)
    return json_response(answer)


@router.get("/alerts", responses=ERRORS, dependencies=[requires(Role.VIEWER)])
async def list_alerts(request: Request, limit: int = Query(100, ge=1, le=1000)) -> Response:
    """The latest alerts received, newest first, with the action each one started."""
    service = monitoring_service(request)
    return json_response({"alerts": await run_in_threadpool(service.alerts.recent, limit)})


@router.get("/retrain/jobs", responses=ERRORS, dependencies=[requires(Role.VIEWER)])
async def list_retrain_jobs(request: Request, limit: int = Query(50, ge=1, le=1000)) -> Response:
    """Retraining jobs started by alerts, newest first."""
    service = monitoring_service(request)
    return json_response({"jobs": await run_in_threadpool(service.retrain.jobs, limit)})
