"""`POST /predict` and `POST /predict/batch`.

Both parse the body themselves (orjson, column-wise validation against the signature), run the
blocking model call in a worker thread, answer with a prediction_id per row, and hand the rows
to the prediction log with one queue put. Metrics count rows: success, invalid (4xx) or error.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop.errors import MloopError, UserError, ValidationError
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.security.access import Role, requires
from mloop.serving.api_models import (
    ERRORS,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    request_body,
)
from mloop.serving.body import parse_object, read_body
from mloop.serving.handlers import error_response, internal_error_response, json_response
from mloop.serving.loader import LoadedModel
from mloop.serving.metrics import ERROR, INVALID, SUCCESS
from mloop.serving.state import ServingState, serving_state

log = logging.getLogger("mloop.serving")

router = APIRouter(tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=request_body(PredictRequest),
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict(request: Request) -> Response:
    """Predict one row: `{"features": {name: value}}` or `{"features": [values...]}`."""
    state = serving_state(request)
    started = time.perf_counter()
    rows: list[Any] = []
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        features = parse_object(body, key="features", columns=_columns(state))
        if not isinstance(features, dict | list):
            raise ValidationError(
                "'features' must be an object by feature name or an array in signature order"
            )
        rows = [features]
        model = state.runtime.require()
        frame = model.schema.to_frame(rows)
    except MloopError as exc:
        return _refused(state, exc, rows=1)
    answer = await _call_model(state, model, frame, rows=1)
    if isinstance(answer, Response):
        return answer
    labels, confidence, probabilities = answer
    prediction_id = str(uuid.uuid4())
    latency = time.perf_counter() - started
    state.metrics.count(model.version, SUCCESS)
    state.metrics.observe(model.version, latency, confidence)
    _publish(state, model, frame, [prediction_id], rows, labels, confidence, latency)
    return json_response(
        {
            "prediction": labels[0],
            "probability": confidence[0] if confidence is not None else None,
            "probabilities": (
                dict(zip(map(str, model.classes), probabilities[0].tolist(), strict=True))
                if probabilities is not None and model.classes is not None
                else None
            ),
            "model_name": model.name,
            "model_version": model.version,
            "prediction_id": prediction_id,
            "latency_ms": round(latency * 1000, 3),
        }
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
        limit = state.settings.max_batch_rows
        if len(instances) > limit:
            raise ValidationError(
                f"'instances' has {len(instances)} rows, over the limit of {limit}",
                hint="split the batch or raise MLOOP_MAX_BATCH_ROWS",
            )
        model = state.runtime.require()
        frame = model.schema.to_frame(instances)
    except MloopError as exc:
        return _refused(state, exc, rows=count)
    answer = await _call_model(state, model, frame, rows=len(instances))
    if isinstance(answer, Response):
        return answer
    labels, confidence, _ = answer
    ids = [str(uuid.uuid4()) for _ in instances]
    latency = time.perf_counter() - started
    state.metrics.count(model.version, SUCCESS, len(instances))
    state.metrics.observe(model.version, latency, confidence)
    _publish(state, model, frame, ids, instances, labels, confidence, latency)
    confidences = confidence if confidence is not None else [None] * len(ids)
    return json_response(
        {
            "predictions": [
                {"prediction": label, "probability": p, "prediction_id": i}
                for label, p, i in zip(labels, confidences, ids, strict=True)
            ],
            "total_count": len(ids),
            "model_name": model.name,
            "model_version": model.version,
            "total_latency_ms": round(latency * 1000, 3),
        }
    )


async def _call_model(
    state: ServingState, model: LoadedModel, frame: Any, *, rows: int
) -> tuple[list[Any], list[float] | None, np.ndarray | None] | Response:
    """Labels, confidence per row and the probability matrix; a 500 response when it fails."""
    try:
        labels, probabilities = await run_in_threadpool(model.predict, frame)
    except Exception as exc:  # the model itself failed: log it, never leak it
        log.exception("model %s/%s failed on %d rows", model.name, model.version, rows)
        state.metrics.count(model.version, ERROR, rows)
        return internal_error_response(
            f"the model failed on this input ({type(exc).__name__}); see the server log"
        )
    confidence = probabilities.max(axis=1).tolist() if probabilities is not None else None
    return labels.tolist(), confidence, probabilities


def _columns(state: ServingState) -> tuple[str, ...] | None:
    model = state.runtime.model
    return model.schema.names if model is not None else None


def _refused(state: ServingState, exc: MloopError, *, rows: int) -> Response:
    """Count a refused request (invalid input, or error when no model) and answer it."""
    status = INVALID if isinstance(exc, UserError) else ERROR
    state.metrics.count(state.version_label, status, rows)
    return error_response(exc)


def _publish(state, model, frame, ids, rows, labels, confidence, latency) -> None:
    state.publish(
        PredictionBatch(
            model_name=model.name,
            model_version=model.version,
            created_at=datetime.now(UTC),
            ids=ids,
            rows=rows,
            predictions=labels,
            probabilities=confidence if confidence is not None else [None] * len(ids),
            latency_ms=round(latency * 1000, 3),
            columns=model.schema.names,
        ),
        frame,
    )
