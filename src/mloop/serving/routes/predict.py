"""`POST /predict` and `POST /predict/batch`, and the answer path they share with a
deployment's `POST /deployments/{name}/predict[/batch]`.

Both parse the body themselves (orjson, column-wise validation against the signature) and go
through `serving.inference.infer`: prediction cache, then the model's adaptive batcher, which
coalesces concurrent requests into one model call in a worker thread and hands answered rows to
the prediction log and listeners. Metrics count rows: success, invalid (4xx), timeout or error,
per `variant` (`default` for the served model, `deployment/variant` for deployment traffic).

Deployment traffic (a deployment route, or `/predict` on a server started without a model
reference, which follows the default deployment): each row's sticky key picks its variant
(`serving.traffic`), rows are grouped per variant, each group is validated against its
variant's model and answered by it, and the answer keeps the request's row order. The live
counts see every group; rows the router mirrors go to the shadow candidate after the answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from mloop import logs
from mloop.errors import DeadlineExceededError, MloopError, NotFoundError, ValidationError
from mloop.features import feast_client
from mloop.model.loader import LoadedModel
from mloop.model.schema import Columns
from mloop.security.access import Role, requires
from mloop.serving.api_models import (
    ERRORS,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    errors,
    request_body,
)
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.batcher import Answer
from mloop.serving.body import parse_fields, read_body
from mloop.serving.handlers import error_response, json_response
from mloop.serving.inference import infer, request_timeout
from mloop.serving.metrics import DEFAULT_VARIANT, ERROR, SUCCESS, TIMEOUT, refusal_status
from mloop.serving.routes import FAST_DATA_PLANE
from mloop.serving.runtime import ModelRuntime
from mloop.serving.state import ServingState, serving_state
from mloop.serving.traffic import USER_HEADER, Route

log = logging.getLogger("mloop.serving")

router = APIRouter(route_class=AuthFirstRoute, tags=["predict"], responses=errors(400, 404, 415))

# Which worker process answered (multi-worker metrics tests, debugging a load balancer).
WORKER_HEADER = {"x-mloop-worker": str(os.getpid())}
NO_VARIANT = "none"  # the variant label of a deployment request refused before routing


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={**request_body(PredictRequest), **FAST_DATA_PLANE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict(request: Request) -> Response:
    """Predict one row: `{"features": {name: value}}` or `{"features": [values...]}`."""
    return await answer_one(request)


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=ERRORS,
    openapi_extra={**request_body(BatchRequest), **FAST_DATA_PLANE},
    dependencies=[requires(Role.PREDICTOR)],
)
async def predict_batch(request: Request) -> Response:
    """Predict many rows: `{"instances": [row, ...]}`, at most MLOOP_MAX_BATCH_ROWS rows."""
    return await answer_batch(request)


async def answer_one(request: Request, deployment: str | None = None) -> Response:
    """The `/predict` answer (the route, the fast path and the deployment route call this)."""
    return await _answer(request, many=False, deployment=deployment)


async def answer_batch(request: Request, deployment: str | None = None) -> Response:
    """The `/predict/batch` answer (the route, the fast path and the deployment route)."""
    return await _answer(request, many=True, deployment=deployment)


@dataclass
class _Group:
    """The rows of one request that one model answers (a deployment variant, or the served one)."""

    runtime: ModelRuntime
    label: str  # the metrics `variant` label
    indices: list[int] = field(default_factory=list)  # positions in the request
    rows: list[Any] = field(default_factory=list)  # as sent in the request
    variant: str | None = None  # None: the served model, no deployment
    sent: list[Any] = field(default_factory=list)  # as the model sees them (no sticky key)
    mirrored: list[int] = field(default_factory=list)  # positions in `rows` sent to the shadow
    shadow_ref: str | None = None
    shadow_variant: str | None = None
    model: LoadedModel | None = None
    part: Columns | None = None
    answer: Answer | None = None


async def _answer(request: Request, *, many: bool, deployment: str | None) -> Response:
    state = serving_state(request)
    started = time.perf_counter()
    count = 1
    label = DEFAULT_VARIANT if deployment is None else NO_VARIANT
    group: _Group | None = None
    route: Route | None = None
    try:
        route = _route(state, deployment)
        if route is not None:
            label = NO_VARIANT
        body = await read_body(request, state.settings.max_body_bytes)
        if state.settings.feast_url and feast_client.has_entities(body):  # entity keys: Feast
            body = await feast_client.features_body(
                state.settings, body, many=many, columns=_columns(state),
                max_rows=state.settings.max_batch_rows,
            )  # fmt: skip
        rows, key = _parse(state, body, many, route)
        count = max(len(rows), 1)
        timeout = request_timeout(request, state)
        if route is None:
            groups = [_Group(state.runtime, DEFAULT_VARIANT, list(range(len(rows))), rows)]
        else:
            groups = _split(state, route, request, rows, key)
        for group in groups:
            label = group.label
            group.model = group.runtime.require()
            _prepare(group, route)
    except MloopError as exc:
        if route is not None and group is not None and exc.http_status >= 500:
            _record(state, route, group, started, ok=False)  # the variant's model is not ready
        return refused(state, exc, rows=count, variant=label)
    if len(groups) == 1:
        g = groups[0]
        results = [await run(state, g.model, g.part, g.sent, timeout, g.label)]
    else:
        results = await asyncio.gather(
            *(run(state, g.model, g.part, g.sent, timeout, g.label) for g in groups)
        )
    latency = time.perf_counter() - started
    failure = None
    for group, result in zip(groups, results, strict=True):
        if isinstance(result, Response):
            failure = result if failure is None else failure
            if route is not None:
                _record(state, route, group, started, ok=False)
            continue
        group.answer = result
        version = group.model.version
        logs.bind(model=group.model.name, version=version)  # for this request's log lines
        state.metrics.count(version, SUCCESS, group.part.rows, group.label)
        state.metrics.observe(version, latency, result.confidence, group.label)
        if route is not None:
            _record(state, route, group, started, ok=True)
            if group.mirrored:
                _mirror(state, route, group)
    if failure is not None:
        return failure
    if many:
        return json_response(_batch_body(groups, len(rows), route, latency), headers=WORKER_HEADER)
    return json_response(_one_body(groups[0], route, latency), headers=WORKER_HEADER)


def _route(state: ServingState, deployment: str | None) -> Route | None:
    """The deployment this request goes to: the one named, the default one, or none."""
    traffic = state.traffic
    if deployment is not None:
        if traffic is None:
            raise NotFoundError(f"no deployment named '{deployment}' is served here")
        return traffic.get(deployment)
    return traffic.default_route() if traffic is not None else None


def _parse(
    state: ServingState, body: bytes, many: bool, route: Route | None
) -> tuple[list[Any], str | None]:
    """The request's rows, and the sticky key sent at the top level of the body (if any)."""
    optional = (route.sticky_key,) if route is not None else ()
    key_name = "instances" if many else "features"
    member, extras = parse_fields(
        body, key=key_name, many=many, columns=_columns(state), optional=optional
    )
    if many:
        if not isinstance(member, list):
            raise ValidationError("'instances' must be an array of rows (objects or arrays)")
        if not member:
            raise ValidationError("'instances' is empty: send at least one row")
        check_batch_rows(state, len(member), "'instances'")
        rows = member
    else:
        if not isinstance(member, dict | list):
            raise ValidationError(
                "'features' must be an object by feature name or an array in signature order"
            )
        rows = [member]
    key = None
    if route is not None and route.sticky_key in extras:
        key = _key_text(extras[route.sticky_key], route.sticky_key)
    return rows, key


def _key_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError(f"{name!r} must be a string or a number, got {type(value).__name__}")
    return str(value)


def _split(
    state: ServingState, route: Route, request: Request, rows: list[Any], key: str | None
) -> list[_Group]:
    """Rows grouped per variant, groups in order of their first row."""
    forced = request.headers.get(route.force_header) or None
    header_key = request.headers.get(USER_HEADER) or None
    sticky = route.sticky_key
    groups: dict[str, _Group] = {}
    for index, row in enumerate(rows):
        row_key = key
        if row_key is None and isinstance(row, dict) and row.get(sticky) is not None:
            row_key = _key_text(row[sticky], sticky)
        choice = route.router.choose(row_key or header_key, forced)
        group = groups.get(choice.variant)
        if group is None:
            group = groups[choice.variant] = _Group(
                state.pool.runtime(choice.model_ref),
                state.metrics.variant_label(route.name, choice.variant),
                variant=choice.variant,
            )
        if choice.shadow_ref is not None:
            group.mirrored.append(len(group.rows))
            group.shadow_ref, group.shadow_variant = choice.shadow_ref, choice.shadow_variant
        group.indices.append(index)
        group.rows.append(row)
    return list(groups.values())


def _prepare(group: _Group, route: Route | None) -> None:
    """Validate the group's rows against its model (the sticky key dropped unless a feature)."""
    schema = group.model.schema
    rows = group.rows
    if route is not None and route.sticky_key not in schema.names_set:
        drop = route.sticky_key
        rows = [
            {k: v for k, v in row.items() if k != drop}
            if isinstance(row, dict) and drop in row
            else row
            for row in rows
        ]
    indices = group.indices
    contiguous = indices[-1] - indices[0] + 1 == len(indices)
    try:
        group.part = schema.validate(rows, row_offset=indices[0] if contiguous else 0)
    except ValidationError:
        if contiguous:
            raise
        for i, row in zip(indices, rows, strict=True):  # name the row by its request position
            schema.validate([row], row_offset=i)
        raise
    group.sent = rows


def _record(state: ServingState, route: Route, group: _Group, started: float, *, ok: bool) -> None:
    rows = group.part.rows if group.part is not None else len(group.rows)
    state.traffic.counts.record(route.name, group.variant, time.perf_counter() - started, ok, rows)


def _mirror(state: ServingState, route: Route, group: _Group) -> None:
    """Hand the mirrored rows and the answers given to the shadow runner (never waits)."""
    try:
        runtime = state.pool.runtime(group.shadow_ref)
    except MloopError as exc:
        log.warning("shadow of %s: %s", route.name, exc.message)
        return
    positions = group.mirrored
    rows = group.rows if len(positions) == len(group.rows) else [group.rows[i] for i in positions]
    labels = group.answer.labels
    answered = labels if len(positions) == len(labels) else [labels[i] for i in positions]
    state.traffic.shadow.mirror(
        route.name, group.shadow_variant, runtime, rows, answered, route.sticky_key
    )


def _one_body(group: _Group, route: Route | None, latency: float) -> dict[str, Any]:
    """The `/predict` answer; the probability fields only for models with class probabilities
    (a regressor's or a custom model's answer is its prediction alone)."""
    model, answer = group.model, group.answer
    confidence = answer.confidence
    probabilities = answer.probabilities
    body: dict[str, Any] = {"prediction": answer.labels[0]}
    if probabilities is not None and model.classes is not None:
        body["probability"] = confidence[0]
        body["probabilities"] = dict(zip(model.class_names, probabilities[0].tolist(), strict=True))
    body["model_name"] = model.name
    body["model_version"] = model.version
    body["prediction_id"] = answer.ids[0]
    body["latency_ms"] = round(latency * 1000, 3)
    if route is not None:
        body["deployment"] = route.name
        body["variant"] = group.variant
    return body


def _batch_body(
    groups: list[_Group], count: int, route: Route | None, latency: float
) -> dict[str, Any]:
    first = groups[0].model
    if route is None:
        answer = groups[0].answer
        confidences = answer.confidence
        if confidences is None:  # no class probabilities: the prediction alone
            predictions = [
                {"prediction": label, "prediction_id": i}
                for label, i in zip(answer.labels, answer.ids, strict=True)
            ]
        else:
            predictions = [
                {"prediction": label, "probability": p, "prediction_id": i}
                for label, p, i in zip(answer.labels, confidences, answer.ids, strict=True)
            ]
    else:
        predictions: list[Any] = [None] * count
        for group in groups:
            answer = group.answer
            confidences = answer.confidence or [None] * len(answer.ids)
            version = group.model.version
            for j, index in enumerate(group.indices):
                predictions[index] = {
                    "prediction": answer.labels[j],
                    "probability": confidences[j],
                    "prediction_id": answer.ids[j],
                    "variant": group.variant,
                    "model_version": version,
                }
    body = {
        "predictions": predictions,
        "total_count": count,
        "model_name": first.name,  # of the first row's variant; each row names its own
        "model_version": first.version,
        "total_latency_ms": round(latency * 1000, 3),
    }
    if route is not None:
        body["deployment"] = route.name
    return body


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
    variant: str = DEFAULT_VARIANT,
) -> Answer | Response:
    """The answer, or the error response (504 past the deadline, 500 when the model fails)."""
    try:
        return await infer(state, model, part, rows, timeout=timeout)
    except DeadlineExceededError as exc:
        state.metrics.count(model.version, TIMEOUT, part.rows, variant)
        return error_response(exc)
    except MloopError as exc:
        state.metrics.count(model.version, ERROR, part.rows, variant)
        return error_response(exc)


def _columns(state: ServingState) -> tuple[str, ...] | None:
    model = state.runtime.model
    return model.schema.names if model is not None else None


def refused(
    state: ServingState, exc: MloopError, *, rows: int, variant: str = DEFAULT_VARIANT
) -> Response:
    """Count a refused request (invalid input, or error when no model) and answer it."""
    status = refusal_status(exc)
    state.metrics.count(state.version_label, status, rows, variant)
    return error_response(exc)
