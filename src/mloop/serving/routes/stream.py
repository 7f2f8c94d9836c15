"""`POST /predict/stream`: newline-delimited JSON in, one JSON line out per input line.

Each input line is `{"id": ..., "features": row}` (`id` optional: the line number then). Each
output line carries that `id` and either the prediction (`prediction`, `probability`,
`prediction_id`) or the error (`error`, `detail`) of that line, in input order. Lines are
answered while the body still arrives: a reader task parses lines as chunks come and starts
each line's prediction (through the cache and the batcher, so lines share model calls); the
response writes answers in order. At most `MLOOP_STREAM_WINDOW` lines are in flight and a line
may be at most `MLOOP_MAX_BODY_BYTES` long, so memory stays bounded however long the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mloop.errors import MloopError, ValidationError
from mloop.model.schema import describe_value
from mloop.security.access import Role, requires
from mloop.serving.api_models import errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json
from mloop.serving.inference import count_refused, infer_counted, request_timeout
from mloop.serving.routes import DATA_PLANE
from mloop.serving.routes.predict import refused
from mloop.serving.state import ServingState, serving_state

router = APIRouter(
    route_class=AuthFirstRoute, tags=["predict"], responses=errors(400, 413, 415, 422, 503)
)

_END = object()


@router.post(
    "/predict/stream",
    dependencies=[requires(Role.PREDICTOR)],
    response_class=Response,
    openapi_extra={
        **DATA_PLANE,
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": 'One {"id": ..., "features": row} per line; each line '
                        "is checked alone and a bad one answers an error line.",
                    },
                    "example": '{"id": "a", "features": {"tenure_months": 12, "plan": "basic"}}\n',
                }
            },
        },
    },
)
async def predict_stream(request: Request) -> Response:
    """Predict a stream of NDJSON lines; answers one NDJSON line per input line, in order."""
    state = serving_state(request)
    try:
        timeout = request_timeout(request, state)
        length = request.headers.get("content-length")
        if "transfer-encoding" not in request.headers and length in (None, "0"):
            raise ValidationError("the request body is empty: send NDJSON lines, one per row")
        state.runtime.require()
    except MloopError as exc:
        return refused(state, exc, rows=1)
    return NDJSONStream(_answers(request, state, timeout))


class NDJSONStream(Response):
    """A streamed `application/x-ndjson` response that leaves `receive` to the request body.

    Starlette's StreamingResponse listens for a disconnect on `receive` while it streams,
    which would swallow request body chunks that this endpoint is still reading.
    """

    media_type = "application/x-ndjson"

    def __init__(self, lines: AsyncIterator[bytes]) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        # No content-length: the body is as long as the stream (chunked encoding).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.lines = lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async for line in self.lines:
                await send({"type": "http.response.body", "body": line, "more_body": True})
        except (OSError, ClientDisconnect):
            return
        finally:
            await self.lines.aclose()  # type: ignore[attr-defined]
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _answers(request: Request, state: ServingState, timeout: float | None):
    """Answer lines in input order while a reader task starts their predictions."""
    window: asyncio.Queue[Any] = asyncio.Queue(maxsize=state.settings.stream_window)
    reader = asyncio.create_task(_read(request, state, window, timeout))
    try:
        while True:
            item = await window.get()
            if item is _END:
                break
            yield await item
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _read(request: Request, state: ServingState, window: asyncio.Queue, timeout) -> None:
    """Split the body into lines; start one task per line (at most `window` waiting)."""
    limit = state.settings.max_body_bytes
    buffer = b""
    number = 0
    skipping = False  # inside an over-long line, until its newline
    try:
        async for chunk in request.stream():
            buffer += chunk
            while True:
                cut = buffer.find(b"\n")
                if cut < 0:
                    break
                line, buffer = buffer[:cut], buffer[cut + 1 :]
                if skipping:
                    skipping = False
                    continue
                if len(line) > limit:
                    number += 1
                    await window.put(_done(_too_long(number, limit)))
                elif line.strip():
                    number += 1
                    await window.put(_start(state, line, number, timeout))
            if len(buffer) > limit and not skipping:
                number += 1
                await window.put(_done(_too_long(number, limit)))
                buffer, skipping = b"", True
            elif skipping:
                buffer = b""
        if buffer.strip() and not skipping:
            number += 1
            await window.put(_start(state, buffer, number, timeout))
    except ClientDisconnect:
        pass
    finally:
        await window.put(_END)


def _start(state: ServingState, line: bytes, number: int, timeout) -> asyncio.Task:
    return asyncio.ensure_future(_answer(state, line, number, timeout))


def _done(value: bytes) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


async def _answer(state: ServingState, line: bytes, number: int, timeout) -> bytes:
    """The output line for one input line (an error line when anything is wrong with it)."""
    started = time.perf_counter()
    line_id: Any = number
    try:
        document, _ = parse_json(line)
        if not isinstance(document, dict):
            raise ValidationError(
                f'each line must be an object {{"id": ..., "features": row}}, '
                f"got {describe_value(document)}"
            )
        line_id = document.get("id", number)
        unknown = [k for k in document if k not in ("id", "features")]
        if unknown:
            raise ValidationError(f"unknown field {', '.join(map(repr, unknown))} on this line")
        if "features" not in document:
            raise ValidationError("the line has no 'features' field")
        features = document["features"]
        if not isinstance(features, dict | list):
            raise ValidationError(
                "'features' must be an object by feature name or an array in signature order"
            )
        model = state.runtime.require()
        part = model.schema.validate([features])
    except MloopError as exc:
        count_refused(state, exc)
        return _line({"id": line_id, **exc.to_dict()})
    try:
        answer = await infer_counted(state, model, part, [features], timeout=timeout)
    except MloopError as exc:
        return _line({"id": line_id, **exc.to_dict()})
    confidence = answer.confidence
    state.metrics.observe(model.version, time.perf_counter() - started, confidence)
    return _line(
        {
            "id": line_id,
            "prediction": answer.labels[0],
            "probability": confidence[0] if confidence is not None else None,
            "prediction_id": answer.ids[0],
            "model_version": model.version,
        }
    )


def _too_long(number: int, limit: int) -> bytes:
    return _line(
        {
            "id": number,
            "error": "PayloadTooLargeError",
            "detail": f"line {number} is longer than the limit of {limit} bytes",
        }
    )


def _line(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
