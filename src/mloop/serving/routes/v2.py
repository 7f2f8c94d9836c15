"""The Open Inference Protocol (KServe V2) over REST, so V2 clients (tritonclient, KServe)
talk to mloop unchanged.

One input tensor per model column, named as the column, of shape `[n]` or `[n, 1]`:
FP64/FP32 for double/float columns (NaN is a missing value), INT64/INT32 for integer columns,
BOOL for booleans, BYTES (UTF-8) for strings and dates. Outputs: `label` `[n]`,
`probabilities` `[n, classes]` FP64 (classifiers) and `prediction_id` `[n]` BYTES. Inputs may
be JSON `data` or the binary tensor extension (`Inference-Header-Content-Length`), as
tritonclient sends by default. Errors are `{"error": "..."}` as the protocol asks.

A model with a tensor signature takes its tensor as one input (any name, `TENSOR_INPUT` in
the metadata) of shape `[n, N]`, or `[n]` when N is 1. A model answering several values per
row (a DataFrame, a dict) answers one output per column instead of `label`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from mloop import __version__
from mloop.errors import MloopError, NotFoundError, ValidationError
from mloop.model.loader import LoadedModel
from mloop.security.access import Role, requires
from mloop.serving.api_models import errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json, read_body
from mloop.serving.handlers import json_response, log, request_id
from mloop.serving.inference import count_refused, infer_counted, request_timeout
from mloop.serving.routes import DATA_PLANE
from mloop.serving.routes.predict import WORKER_HEADER, check_batch_rows
from mloop.serving.state import ServingState, serving_state

router = APIRouter(
    route_class=AuthFirstRoute,
    prefix="/v2",
    tags=["open inference protocol (v2)"],
    responses=errors(400, 404, 413, 415, 422, 500, 503),
)

HEADER_LENGTH = "inference-header-content-length"
TENSOR_INPUT = "input"  # the input's name in the metadata of a model with a tensor signature

# Signature type -> V2 datatype of its input tensor.
DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
_NUMPY = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@router.get("/health/live", dependencies=[requires(Role.PUBLIC)])
async def live() -> Response:
    """Server liveness (200 while the process runs)."""
    return json_response({"live": True})


@router.get("/health/ready", dependencies=[requires(Role.PUBLIC)])
async def ready(request: Request) -> Response:
    """Server readiness: 200 once the model serves, 503 before."""
    ok = serving_state(request).runtime.ready
    return json_response({"ready": ok}, 200 if ok else 503)


@router.get("", dependencies=[requires(Role.VIEWER)])
async def server_metadata() -> Response:
    """Server name, version and protocol extensions."""
    return json_response(
        {"name": "mloop", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


@router.get("/models/{name}", dependencies=[requires(Role.VIEWER)])
@router.get("/models/{name}/versions/{version}", dependencies=[requires(Role.VIEWER)])
async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
    """The model's inputs (one per column) and outputs."""
    try:
        model = _model(serving_state(request), name, version)
    except MloopError as exc:
        return v2_error(exc)
    schema = model.schema
    if schema.tensor is not None:
        datatype = DATATYPES[schema.features[0].type]
        inputs = [{"name": TENSOR_INPUT, "datatype": datatype, "shape": list(schema.tensor)}]
    else:
        inputs = [
            {"name": f.name, "datatype": DATATYPES[f.type], "shape": [-1]} for f in schema.features
        ]
    outputs = [{"name": "label", "datatype": _label_type(model), "shape": [-1]}]
    if model.classes is not None:
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    return json_response(
        {
            "name": model.name,
            "versions": [model.version],
            "platform": f"mloop_{model.flavor}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"classes": ",".join(model.class_names)},
        }
    )


@router.get("/models/{name}/ready", dependencies=[requires(Role.PUBLIC)])
@router.get("/models/{name}/versions/{version}/ready", dependencies=[requires(Role.PUBLIC)])
async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    """200 when this model (and version) serves here; 404 for another; 503 while loading."""
    try:
        _model(serving_state(request), name, version)
    except MloopError as exc:
        return v2_error(exc)
    return json_response({"name": name, "ready": True})


@router.post(
    "/models/{name}/infer", dependencies=[requires(Role.PREDICTOR)], openapi_extra=DATA_PLANE
)
@router.post(
    "/models/{name}/versions/{version}/infer",
    dependencies=[requires(Role.PREDICTOR)],
    openapi_extra=DATA_PLANE,
)
async def infer_v2(request: Request, name: str, version: str | None = None) -> Response:
    """Inference on V2 tensors: one input per column, JSON or binary data."""
    state = serving_state(request)
    count = 1
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        timeout = request_timeout(request, state)
        model = _model(state, name, version)
        document, inputs, shapes = _parse(body, request.headers.get(HEADER_LENGTH))
        _check_datatypes(model, document)
        rows = _tensor_rows(model, inputs, shapes) if model.schema.tensor else None
        rows = rows or _rows(model, inputs, shapes)
        count = max(len(rows), 1)
        check_batch_rows(state, len(rows), "the request")
        wanted = _requested_outputs(document, model)
        part = model.schema.validate(rows)
    except MloopError as exc:
        count_refused(state, exc, count)
        return v2_error(exc)
    try:
        answer = await infer_counted(state, model, part, rows, timeout=timeout)
    except MloopError as exc:
        return v2_error(exc)
    n = len(answer.labels)
    outputs = []
    if "label" in wanted:
        outputs.extend(_label_outputs(model, answer.labels))
    if "probabilities" in wanted and answer.probabilities is not None:
        matrix = answer.probabilities
        outputs.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": list(matrix.shape),
                "data": matrix.reshape(-1),
            }
        )
    if "prediction_id" in wanted:
        outputs.append(
            {"name": "prediction_id", "datatype": "BYTES", "shape": [n], "data": answer.ids}
        )
    response = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if isinstance(document.get("id"), str):
        response["id"] = document["id"]
    return json_response(response, headers=WORKER_HEADER)


def v2_error(exc: MloopError) -> Response:
    """`{"error": message}` with mloop's status code (the protocol's error shape)."""
    text = exc.message if not exc.hint else f"{exc.message} (hint: {exc.hint})"
    body = {"error": text}
    if exc.http_status >= 500:  # the request id its log line names (serving.handlers)
        body["request_id"] = rid = request_id()
        log.error("answered %d (request_id %s): %s", exc.http_status, rid, exc.message)
    return json_response(body, exc.http_status)


def _model(state: ServingState, name: str, version: str | None) -> LoadedModel:
    model = state.runtime.require()
    if name != model.name:
        raise NotFoundError(
            f"model {name!r} is not served here (this server serves {model.name!r})"
        )
    if version is not None and version != model.version:
        raise NotFoundError(
            f"version {version!r} of {name!r} is not served here (this server serves "
            f"version {model.version})"
        )
    return model


def _label_type(model: LoadedModel) -> str:
    classes = model.classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, str) for c in classes):
        return "BYTES"
    return "FP64" if model.classes is None else "BYTES"


def _label_outputs(model: LoadedModel, labels: list[Any]) -> list[dict[str, Any]]:
    """`label` `[n]`; or, for answers of several named values per row, one output per name
    (and one `[n, k]` `label` for rows of k values)."""
    n = len(labels)
    if labels and isinstance(labels[0], dict):
        return [_output(name, [row.get(name) for row in labels]) for name in labels[0]]
    if labels and isinstance(labels[0], list):
        width = len(labels[0])
        flat = [v for row in labels for v in row]
        return [{**_output("label", flat), "shape": [n, width]}]
    return [{"name": "label", "datatype": _label_type(model), "shape": [n], "data": labels}]


def _output(name: str, values: list[Any]) -> dict[str, Any]:
    """One output tensor of plain values, its datatype read from the values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        datatype = "BOOL"
    elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        datatype = "INT64"
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        datatype = "FP64"
    else:
        datatype, values = "BYTES", [v if isinstance(v, str) else str(v) for v in values]
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}


def _parse(
    body: bytes, header_length: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[int]]]:
    """The request's JSON header, its inputs as name -> flat numpy/list values, and their
    shapes."""
    binary = b""
    if header_length is not None:
        digits = header_length.isascii() and header_length.isdigit()
        if not digits or int(header_length) > len(body):
            raise ValidationError(
                f"header Inference-Header-Content-Length is {header_length!r}, but the body "
                f"has {len(body)} bytes"
            )
        split = int(header_length)
        body, binary = body[:split], body[split:]
    document, _ = parse_json(body)  # NaN tokens allowed: a missing value in an FP tensor
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise ValidationError("the request must be a JSON object with an 'inputs' list")
    offset = 0
    inputs: dict[str, Any] = {}
    shapes: dict[str, list[int]] = {}
    for tensor in document["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ValidationError("every input needs a 'name', 'shape', 'datatype' and data")
        name = tensor["name"]
        datatype = tensor.get("datatype")
        shape = tensor.get("shape")
        if datatype not in _NUMPY and datatype != "BYTES":
            raise ValidationError(f"input {name!r}: unknown datatype {datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValidationError(f"input {name!r}: 'shape' must be a list of sizes")
        if len(shape) == 0 or len(shape) > 2:
            raise ValidationError(
                f"input {name!r}: shape {shape} is not a table; send shape [n] or [n, k]"
            )
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise ValidationError(
                    f"input {name!r}: binary_data_size {size!r} overruns the body"
                )
            values = _from_binary(name, datatype, binary[offset : offset + size])
            offset += size
        elif "data" in tensor:
            values = _from_json(name, datatype, tensor["data"])
        else:
            raise ValidationError(f"input {name!r} has no 'data'")
        size = math.prod(shape)
        if len(values) != size:
            raise ValidationError(
                f"input {name!r}: shape {shape} says {size} values, got {len(values)}"
            )
        if name in inputs:
            raise ValidationError(f"input {name!r} is given twice")
        inputs[name] = values
        shapes[name] = shape
    return document, inputs, shapes


def _from_binary(name: str, datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        out, i = [], 0
        while i < len(raw):
            if i + 4 > len(raw):
                raise ValidationError(f"input {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, i)
            i += 4
            if i + length > len(raw):
                raise ValidationError(f"input {name!r}: truncated BYTES element")
            out.append(_text(name, raw[i : i + length]))
            i += length
        return out
    dtype = np.dtype(_NUMPY[datatype])
    if len(raw) % dtype.itemsize:
        raise ValidationError(
            f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype}"
        )
    return _plain(np.frombuffer(raw, dtype=dtype))


def _from_json(name: str, datatype: str, data: Any) -> list[Any]:
    flat = _flatten(data)
    if datatype == "BYTES":
        return [_text(name, v.encode()) if isinstance(v, str) else v for v in flat]
    if datatype == "BOOL":
        return flat
    return [math.nan if v is None else v for v in flat] if datatype.startswith("FP") else flat


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [v for row in data for v in _flatten(row)]
    return data


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"input {name!r}: a BYTES element is not UTF-8 text") from None


def _plain(array: np.ndarray) -> list[Any]:
    return array.tolist()


def _fits(datatype: str, feature_type: str) -> bool:
    """Whether a V2 datatype can carry a column of this signature type."""
    expected = DATATYPES.get(feature_type)
    if expected == "BYTES" or datatype == "BYTES":
        return datatype == expected
    if expected == "BOOL" or datatype == "BOOL":
        return datatype == expected
    return True  # any number type for a number column; the schema checks the values


def _check_datatypes(model: LoadedModel, document: dict[str, Any]) -> None:
    """Refuse an input declared with a datatype its column cannot take (BYTES for a number)."""
    schema = model.schema
    by_name = {f.name: f for f in schema.features}
    for tensor in document["inputs"]:
        name, datatype = tensor["name"], tensor["datatype"]
        feature = by_name.get(name) or (schema.features[0] if schema.tensor else None)
        if feature is not None and not _fits(datatype, feature.type):
            raise ValidationError(
                f"input {name!r} is declared {datatype}, but feature {feature.name!r} is "
                f"{feature.type}",
                hint=f"send it as {DATATYPES[feature.type]}",
            )


def _tensor_rows(
    model: LoadedModel, inputs: dict[str, list[Any]], shapes: dict[str, list[int]]
) -> list[list[Any]] | None:
    """A tensor model's one input `[n, N]` as rows of N values; None when the request sends
    one input per column instead (named "0" to "N-1")."""
    schema = model.schema
    width = len(schema.names)
    if len(inputs) != 1 or (width == 1 and set(inputs) == schema.names_set):
        return None
    ((name, values),) = inputs.items()
    shape = shapes[name]
    if (shape[1] if len(shape) == 2 else 1) != width:
        raise ValidationError(
            f"input {name!r}: shape {shape}, but the model takes a tensor of shape "
            f"{list(schema.tensor or ())}",
            hint=f"send one input of shape [n, {width}]",
        )
    if not shape[0]:
        raise ValidationError("the inputs hold no rows")
    values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    return [values[i : i + width] for i in range(0, len(values), width)]


def _rows(
    model: LoadedModel, inputs: dict[str, list[Any]], shapes: dict[str, list[int]]
) -> list[dict[str, Any]]:
    """Columns -> row dicts; NaN in a float tensor is a missing value (null)."""
    schema = model.schema
    for name, shape in shapes.items():
        if len(shape) == 2 and shape[1] != 1:
            raise ValidationError(
                f"input {name!r}: shape {shape} is not one column; send shape [n] or [n, 1]"
            )
    missing = [n for n in schema.names if n not in inputs]
    unknown = [n for n in inputs if n not in schema.names_set]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing input {', '.join(repr(m) for m in missing)}")
        if unknown:
            problems.append(f"unknown input {', '.join(repr(u) for u in unknown)}")
        raise ValidationError(
            "; ".join(problems), hint=f"one input per column: {', '.join(schema.names)}"
        )
    lengths = {len(v) for v in inputs.values()}
    if len(lengths) != 1:
        raise ValidationError("every input must hold the same number of rows")
    if lengths == {0}:
        raise ValidationError("the inputs hold no rows")
    columns = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in inputs[name]]
        for name in schema.names
    ]
    return [dict(zip(schema.names, values, strict=True)) for values in zip(*columns, strict=True)]


def _requested_outputs(document: dict[str, Any], model: LoadedModel) -> set[str]:
    available = {"label", "prediction_id"} | (
        {"probabilities"} if model.classes is not None else set()
    )
    asked = document.get("outputs")
    if asked is None:
        return available
    if not isinstance(asked, list) or not all(isinstance(o, dict) and "name" in o for o in asked):
        raise ValidationError("'outputs' must be a list of {\"name\": ...} objects")
    names = {o["name"] for o in asked}
    unknown = names - available
    if unknown:
        raise ValidationError(
            f"unknown output {', '.join(sorted(map(repr, unknown)))}; "
            f"available: {', '.join(sorted(available))}"
        )
    return names
