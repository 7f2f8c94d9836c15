"""`POST /invocations`: the MLflow scoring protocol, so clients of `mlflow models serve` can
switch servers without a change.

Accepted JSON bodies (exactly one of): `dataframe_split` (`{"columns", "data", "index"?}`),
`dataframe_records` (a list of row objects), `instances` or `inputs` (row objects, rows in
signature order, or an object of columns), plus an optional `params` object. `text/csv` with a
header row is accepted too. The answer is `{"predictions": ...}` as MLflow gives it
(`mloop.model.output.mlflow_predictions`: a DataFrame answer as records, a dict as columns);
errors use MLflow's shape `{"error_code": "BAD_REQUEST", "message": ...}`. Columns beyond the
signature are ignored, as MLflow does; a model with a tensor signature takes each row's values
in the order sent, whatever the column names (MLflow calls it with the frame's array). Rows
go through the same cache, batcher and prediction log as `/predict`.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from mloop.errors import MloopError, ValidationError
from mloop.model.output import mlflow_predictions
from mloop.model.schema import InputSchema, describe_value
from mloop.security.access import Role, requires
from mloop.serving.api_models import MlflowErrorBody, errors
from mloop.serving.auth_first import AuthFirstRoute
from mloop.serving.body import parse_json, read_body
from mloop.serving.handlers import error_response, json_response
from mloop.serving.inference import count_refused, infer_counted, request_timeout
from mloop.serving.routes import DATA_PLANE
from mloop.serving.routes.predict import WORKER_HEADER, check_batch_rows
from mloop.serving.state import serving_state

router = APIRouter(
    route_class=AuthFirstRoute,
    tags=["mlflow protocol"],
    responses={**errors(400, 404, 409, 413, 415, model=MlflowErrorBody), **errors(500, 503)},
)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")

_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    422: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@router.post(
    "/invocations",
    dependencies=[requires(Role.PREDICTOR)],
    openapi_extra={
        **DATA_PLANE,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "One of dataframe_split, dataframe_records, instances, "
                        "inputs; optional params.",
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        },
    },
)
async def invocations(request: Request) -> Response:
    """Score rows in the MLflow scoring protocol; answers `{"predictions": [...]}`."""
    state = serving_state(request)
    count = 1
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        timeout = request_timeout(request, state)
        model = state.runtime.require()
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        if content_type.strip().lower() == "text/csv":
            rows = [_known_columns(row, model.schema) for row in _csv_rows(body)]
        else:
            rows = _json_rows(body, model.schema)
        count = max(len(rows), 1)
        if not rows:
            raise ValidationError("the request holds no rows")
        check_batch_rows(state, len(rows), "the request")
        part = model.schema.validate(rows)
    except MloopError as exc:
        count_refused(state, exc, count)
        return mlflow_error(exc)
    try:
        answer = await infer_counted(state, model, part, rows, timeout=timeout)
    except MloopError as exc:
        return mlflow_error(exc)
    predictions = mlflow_predictions(answer.labels, model.output_shape)
    return json_response({"predictions": predictions}, headers=WORKER_HEADER)


def mlflow_error(exc: MloopError) -> Response:
    """An error in MLflow's scoring-server shape, with mloop's status code; a 5xx has the
    server-wide shape with a request id (serving.handlers), like every route's."""
    if exc.http_status >= 500:
        return error_response(exc)
    status = 400 if exc.http_status == 422 else exc.http_status
    body = {"error_code": _ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    return json_response(body, status)


def _json_rows(body: bytes, schema: InputSchema) -> list[Any]:
    document, _ = parse_json(body)
    if not isinstance(document, dict):
        raise ValidationError(
            f"the request body must be a JSON object with one of {', '.join(FORMATS)}, "
            f"got {describe_value(document)}"
        )
    given = [key for key in document if key in FORMATS]
    unknown = [key for key in document if key not in FORMATS and key != "params"]
    if len(given) != 1 or unknown:
        raise ValidationError(
            "the request body must be a JSON object with exactly one of the fields "
            f"{', '.join(FORMATS)} (and optionally 'params'); got fields "
            f"{', '.join(repr(k) for k in document) or 'none'}"
        )
    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise ValidationError(f"'params' must be an object, got {describe_value(params)}")
    key = given[0]
    value = document[key]
    if key == "dataframe_split":
        rows = _split_rows(value)
    elif key == "dataframe_records":
        if not isinstance(value, list):
            raise ValidationError(
                f"'dataframe_records' must be a list of row objects, got {describe_value(value)}"
            )
        rows = value
    else:
        rows = _tensor_rows(key, value)
    return [_known_columns(row, schema) for row in rows]


def _split_rows(value: Any) -> list[Any]:
    if not isinstance(value, dict) or "data" not in value:
        raise ValidationError("'dataframe_split' must be an object with 'columns' and 'data'")
    data = value["data"]
    columns = value.get("columns")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise ValidationError("'dataframe_split.data' must be a list of rows (arrays)")
    if columns is None:
        return data
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValidationError("'dataframe_split.columns' must be a list of column names")
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise ValidationError(
                f"row {i}: {len(row)} values for {len(columns)} columns in 'dataframe_split'"
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _tensor_rows(key: str, value: Any) -> list[Any]:
    """`instances` / `inputs`: rows, or an object of equally long columns (or one row)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if value and all(isinstance(v, list) for v in value.values()):
            lengths = {len(v) for v in value.values()}
            if len(lengths) != 1:
                raise ValidationError(f"the columns of {key!r} have different lengths")
            names = list(value)
            return [
                dict(zip(names, values, strict=True))
                for values in zip(*value.values(), strict=True)
            ]
        return [value]
    raise ValidationError(f"{key!r} must be a list of rows or an object of columns")


def _known_columns(row: Any, schema: InputSchema) -> Any:
    """Drop columns the model does not take (MLflow ignores them too); a tensor model takes
    a row object's values in order."""
    if schema.tensor is not None and isinstance(row, dict) and row.keys() != schema.names_set:
        return list(row.values())
    if isinstance(row, dict) and not row.keys() <= schema.names_set:
        return {k: v for k, v in row.items() if k in schema.names_set}
    return row


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    """CSV with a header row; numbers are parsed, empty cells are missing values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"the CSV body is not UTF-8: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for i, record in enumerate(reader):
        if None in record:
            raise ValidationError(f"CSV row {i}: more values than header columns")
        rows.append({k: _csv_value(v) for k, v in record.items()})
    return rows


def _csv_value(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
