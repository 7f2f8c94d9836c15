"""Read and parse request bodies: size limit, fast JSON, clear 4xx for every bad body.

orjson parses first. It refuses the NaN/Infinity tokens that Python's json accepts, so on an
orjson failure the body is parsed again with the stdlib, which reports those tokens: the 422
then names the row and feature holding them (before any other check of the rows) instead of
a vague "malformed JSON".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from mloop.errors import PayloadTooLargeError, ValidationError
from mloop.model.schema import describe_value
from mloop.serving.internals import cached_body, remember_body

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (declared or actually streamed).

    Reads the ASGI messages directly (Starlette's `stream()` is an async generator, a few
    microseconds per request on the serving path) and leaves the body where `request.body()`
    finds it.
    """
    declared = raw_header(request, b"content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    body = cached_body(request)
    if body is None:
        body = await _receive_all(request.receive, limit)
        remember_body(request, body)
    if len(body) > limit:
        raise _too_large(len(body), limit, at_least=True)
    return body


def raw_header(request: Request, name: bytes) -> str | None:
    """One header's value (`name` in lower case), read straight from the ASGI scope.

    Cheaper than `request.headers.get` on the serving path, which builds a Headers object and
    raises and catches a KeyError for every header that is absent.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _receive_all(receive: Receive, limit: int) -> bytes:
    """Every body chunk of the request, stopping once more than `limit` bytes came."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    size = len(body)
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def parse_json(body: bytes) -> tuple[Any, bool]:
    """Parse JSON into (document, whether it held NaN/Infinity tokens).

    ValidationError("malformed JSON: ...") when it is not JSON at all.
    """
    if not body.strip():
        raise ValidationError("malformed JSON: the request body is empty")
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError as exc:
        error = exc
    seen: list[str] = []

    def constant(token: str) -> float:
        seen.append(token)
        return _CONSTANTS[token]

    try:
        return json.loads(body, parse_constant=constant), bool(seen)
    except (ValueError, RecursionError):
        raise ValidationError(f"malformed JSON: {error}") from None


def parse_object(
    body: bytes, *, key: str, many: bool = False, columns: Sequence[str] | None = None
) -> Any:
    """Parse a JSON object body `{key: rows}` and return its `key` member.

    `many`: the member is a list of rows (else one row). `columns` names the positions of
    array rows in messages about NaN/Infinity.
    """
    return parse_fields(body, key=key, many=many, columns=columns)[0]


def parse_fields(
    body: bytes,
    *,
    key: str,
    many: bool = False,
    columns: Sequence[str] | None = None,
    optional: Sequence[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """Like `parse_object`, also allowing the `optional` top-level fields: (member, {field: v})."""
    document, has_constants = parse_json(body)
    if not isinstance(document, dict):
        raise ValidationError(
            f"the request body must be a JSON object with a {key!r} field, "
            f"got {describe_value(document)}"
        )
    if key not in document:
        raise ValidationError(f"the request body has no {key!r} field")
    unknown = [k for k in document if k != key and k not in optional]
    if unknown:
        expected = ", ".join(repr(k) for k in (key, *optional))
        raise ValidationError(
            f"unknown field {', '.join(repr(u) for u in unknown)} in the request body "
            f"(expected {expected})"
        )
    member = document[key]
    if has_constants:
        rows = member if many and isinstance(member, list) else [member]
        _refuse_non_finite(rows, columns)
    extras = {k: document[k] for k in optional if k in document} if optional else {}
    return member, extras


def _refuse_non_finite(rows: list[Any], columns: Sequence[str] | None) -> None:
    """Name the row and feature of the first NaN/Infinity among the rows' values."""
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            items = list(row.items())
        elif isinstance(row, list):
            items = list(enumerate(row))
        else:
            continue
        for key, value in items:
            if isinstance(value, float) and not math.isfinite(value):
                if isinstance(key, str):
                    name = repr(key)
                elif columns is not None and key < len(columns):
                    name = repr(columns[key])
                else:
                    name = f"at position {key}"
                raise ValidationError(
                    f"row {index}: feature {name} is {describe_value(value)}, which is not "
                    "allowed (send null for a missing value where the feature is optional)"
                )


def _too_large(size: int, limit: int, *, at_least: bool = False) -> PayloadTooLargeError:
    more = "more than " if at_least else ""
    return PayloadTooLargeError(
        f"request body of {more}{size} bytes is over the limit of {limit} bytes",
        hint="split the batch or raise MLOOP_MAX_BODY_BYTES",
    )
