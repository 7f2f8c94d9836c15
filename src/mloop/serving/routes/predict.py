"""`POST /predict` and `POST /predict/batch`.

Both parse the body themselves (orjson, column-wise validation against the signature) and go
through `serving.inference.infer`: prediction cache, then the model's adaptive batcher, which
coalesces concurrent requests into one model call in a worker thread and hands answered rows to
the prediction log and listeners. Metrics count rows: success, invalid (4xx), timeout or error.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from mloop.errors import DeadlineExceededError, MloopError, ValidationError
from mloop.security.access import Role, requires
from mloop.serving.api_models import (
    ERRORS,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    request_body,
)
from mloop.serving.batcher import Answer
from mloop.serving.body import parse_object, read_body
from mloop.serving.handlers import error_response, json_response
from mloop.serving.inference import infer, request_timeout
from mloop.serving.loader import LoadedModel
from mloop.serving.metrics import ERROR, SUCCESS, TIMEOUT, refusal_status
from mloop.serving.schema import Columns
from mloop.serving.state import ServingState, serving_state

log = logging.getLogger("mloop.serving")

router = APIRouter(tags=["predict"])

# Which worker process answered (multi-worker metrics tests, debugging a load balancer).
WORKER_HEADER = {"x-mloop-worker": str(os.getpid())}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=request_body(PredictRequest),
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict(request: Request) -> Response:
    """Predict one row: `{"features": {name: value}}` or `{"features": [values...]}`."""
    return await answer_one(request)


async def answer_one(request: Request) -> Response:
    """The `/predict` answer (the route, and the fast path in `serving.fastpath`, call this)."""
    state = serving_state(request)
    started = time.perf_counter()
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        features = parse_object(body, key="features", columns=_columns(state))
        if not isinstance(features, dict | list):
            raise ValidationError(
                "'features' must be an object by feature name or an array in signature order"
            )
        rows = [features]
        timeout = request_timeout(request, state)
        model = state.runtime.require()
        part = model.schema.validate(rows)
    except MloopError as exc:
        return refused(state, exc, rows=1)
    answer = await run(state, model, part, rows, timeout)
    if isinstance(answer, Response):
        return answer
    latency = time.perf_counter() - started
    confidence = answer.confidence
    state.metrics.count(model.version, SUCCESS)
    state.metrics.observe(model.version, latency, confidence)
    probabilities = answer.probabilities
    return json_response(
        {
            "prediction": answer.labels[0],
            "probability": confidence[0] if confidence is not None else None,
            "probabilities": (
                dict(zip(model.class_names, probabilities[0].tolist(), strict=True))
                if probabilities is not None and model.classes is not None
                else None
            ),
            "model_name": model.name,
            "model_version": model.version,
            "prediction_id": answer.ids[0],
            "latency_ms": round(latency * 1000, 3),
        },
        headers=WORKER_HEADER,
    )


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=ERRORS,
    openapi_extra=request_body(BatchRequest),
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict_batch(request: Request) -> Response:
    """Predict many rows: `{"instances": [row, ...]}`, at most MLOOP_MAX_BATCH_ROWS rows."""
    return await answer_batch(request)


async def answer_batch(request: Request) -> Response:
    """The `/predict/batch` answer (the route and the fast path call this)."""
    state = serving_state(request)
    started = time.perf_counter()
    count = 1
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        instances = parse_object(body, key="instances", many=True, columns=_columns(state))
        if not isinstance(instances, list):
            raise ValidationError("'instances' must be an array of rows (objects or arrays)")
        count = max(len(instances), 1)
        if not instances:
            raise ValidationError("'instances' is empty: send at least one row")
        check_batch_rows(state, len(instances), "'instances'")
        timeout = request_timeout(request, state)
        model = state.runtime.require()
        part = model.schema.validate(instances)
    except MloopError as exc:
        return refused(state, exc, rows=count)
    answer = await run(state, model, part, instances, timeout)
    if isinstance(answer, Response):
        return answer
    latency = time.perf_counter() - started
    confidence = answer.confidence
    state.metrics.count(model.version, SUCCESS, len(instances))
    state.metrics.observe(model.version, latency, confidence)
    confidences = confidence if confidence is not None else [None] * len(answer.ids)
    return json_response(
        {
            "predictions": [
                {"prediction": label, "probability": p, "prediction_id": i}
                for label, p, i in zip(answer.labels, confidences, answer.ids, strict=True)
            ],
            "total_count": len(answer.ids),
            "model_name": model.name,
            "model_version": model.version,
            "total_latency_ms": round(latency * 1000, 3),
        },
        headers=WORKER_HEADER,
    )


def check_batch_rows(state: ServingState, rows: int, what: str) -> None:
    """ValidationError when a request holds more than MLOOP_MAX_BATCH_ROWS rows."""
    limit = state.settings.max_batch_rows
    if rows > limit:
        raise ValidationError(
            f"{what} has {rows} rows, over the limit of {limit}",
            hint="split the batch or raise MLOOP_MAX_BATCH_ROWS",
        )


async def run(
    state: ServingState,
    model: LoadedModel,
    part: Columns,
    rows: list[Any],
    timeout: float | None,
) -> Answer | Response:
    """The answer, or the error response (504 past the deadline, 500 when the model fails)."""
    try:
        return await infer(state, model, part, rows, timeout=timeout)
    except DeadlineExceededError as exc:
        state.metrics.count(model.version, TIMEOUT, part.rows)
        return error_response(exc)
    except MloopError as exc:
        state.metrics.count(model.version, ERROR, part.rows)
        return error_response(exc)


def _columns(state: ServingState) -> tuple[str, ...] | None:
    model = state.runtime.model
    return model.schema.names if model is not None else None


def refused(state: ServingState, exc: MloopError, *, rows: int) -> Response:
    """Count a refused request (invalid input, or error when no model) and answer it."""
    status = refusal_status(exc)
    state.metrics.count(state.version_label, status, rows)
    return error_response(exc)
