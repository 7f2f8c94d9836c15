"""`POST /feedback`: ground truth for logged predictions, committed before the answer.

One label (`{"prediction_id", "actual"}`) answers 200, 404 for an unknown prediction or 409
for one already labelled. Many (`{"feedback": [...]}`) answer 200 with a result per label
(`recorded`, `unknown`, `duplicate`) so one bad id does not refuse the rest. Both return the
refreshed live quality of the versions the labels belong to. A label the model cannot answer
(not one of its classes, or not a number for a model answering numbers) is a 422 naming the
allowed values, and nothing of the request is stored.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import ConflictError, NotFoundError
from mloop.monitoring.feedback import DUPLICATE, RECORDED, UNKNOWN, parse_feedback
from mloop.monitoring.service import MonitoringService, monitoring_service
from mloop.security.access import Role, requires
from mloop.serving.api_models import ERRORS, errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json, read_body
from mloop.serving.handlers import json_response
from mloop.serving.state import serving_state

router = APIRouter(route_class=AuthFirstRoute, tags=["monitoring"], responses=errors(400, 404, 409))

_EXAMPLE = {
    "content": {
        "application/json": {
            "examples": {
                # the seed's feedback (prediction_id, actual value), in mloop's field names
                "one": {"value": {"prediction_id": "0b6c...", "actual": 1}},
                "many": {"value": {"feedback": [{"prediction_id": "0b6c...", "actual": 0}]}},
            }
        }
    },
    "required": True,
}


@router.post(
    "/feedback",
    responses=ERRORS,
    openapi_extra={"requestBody": _EXAMPLE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def post_feedback(request: Request) -> Response:
    """Record the actual value of one prediction, or of many (`{"feedback": [...]}`)."""
    state = serving_state(request)
    service = monitoring_service(request)
    body = await read_body(request, state.settings.max_body_bytes)
    document, _ = parse_json(body)
    items, bulk = parse_feedback(document, max_items=state.settings.max_batch_rows)
    results = await run_in_threadpool(partial(service.feedback.record, items, bulk=bulk))
    if not bulk:
        result = results[0]
        if result.status == UNKNOWN:
            raise NotFoundError(
                f"no logged prediction with id {result.prediction_id!r}",
                hint="send the prediction_id a /predict answer returned",
            )
        if result.status == DUPLICATE:
            raise ConflictError(f"prediction {result.prediction_id!r} is already labelled")
    quality = await run_in_threadpool(_refresh, service, results)
    if not bulk:
        return json_response({**results[0].to_dict(), "quality": quality[0] if quality else None})
    counts = {s: sum(r.status == s for r in results) for s in (RECORDED, UNKNOWN, DUPLICATE)}
    return json_response({**counts, "results": [r.to_dict() for r in results], "quality": quality})


def _refresh(service: MonitoringService, results: list[Any]) -> list[dict[str, Any]]:
    """Recompute the quality gauges of every version that got a new label."""
    versions = dict.fromkeys(
        (r.model_name, r.model_version) for r in results if r.status == RECORDED
    )
    return [
        service.quality.refresh(name, version, service.served_classes(name, version)).to_dict()
        for name, version in versions
    ]
