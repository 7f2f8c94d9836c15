"""Request and response bodies, as pydantic models for the OpenAPI docs.

The predict routes parse and serialize bodies themselves (orjson, column-wise validation);
these models only describe the shapes at /docs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Row = dict[str, Any] | list[Any]


# Examples: the seed guide's payloads (mlops-guide.md, its API tests), then rows by name.
SEED_ROW = [25, 50000, 365]
SEED_ROWS = [[25, 50000, 365], [35, 75000, 730], [45, 100000, 1095]]


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"features": SEED_ROW},
                {"features": {"tenure_months": 12, "plan": "basic"}},
            ]
        }
    )

    features: Row = Field(
        description="One row: an object by feature name, or an array in signature order.",
        examples=[{"tenure_months": 12, "plan": "basic"}],
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"instances": SEED_ROWS}]})

    instances: list[Row] = Field(
        description="Rows (objects or arrays), at most MLOOP_MAX_BATCH_ROWS.", min_length=1
    )


class PredictResponse(BaseModel):
    prediction: Any
    probability: float | None = Field(
        None, description="Probability of the predicted class (classifiers only)."
    )
    probabilities: dict[str, float] | None = Field(
        None, description="Probability of every class (classifiers only)."
    )
    model_name: str
    model_version: str
    prediction_id: str
    latency_ms: float


class BatchItem(BaseModel):
    prediction: Any
    probability: float | None = Field(None, description="Classifiers only.")
    prediction_id: str


class BatchResponse(BaseModel):
    predictions: list[BatchItem]
    total_count: int
    model_name: str
    model_version: str
    total_latency_ms: float


class DeploymentPredictRequest(PredictRequest):
    user_id: str | int | None = Field(
        None,
        description="Sticky key (the deployment's `ab.sticky_key`, default `user_id`): the "
        "same key always gets the same variant. Also read from the row or `X-User-Id`.",
    )


class DeploymentBatchRequest(BatchRequest):
    user_id: str | int | None = Field(
        None, description="Sticky key for every row (else each row's own, else `X-User-Id`)."
    )


class DeploymentPredictResponse(PredictResponse):
    deployment: str
    variant: str = Field(description="The variant that answered.")


class DeploymentBatchItem(BatchItem):
    variant: str = Field(description="The variant that answered this row.")
    model_version: str


class DeploymentBatchResponse(BatchResponse):
    predictions: list[DeploymentBatchItem]
    deployment: str


class ErrorBody(BaseModel):
    """Every error answer: `{error, detail?, hint?, request_id?}` (serving.handlers)."""

    error: str = Field(description="Error class, e.g. ValidationError.")
    detail: str | None = Field(None, description="What is wrong: the row, the feature, the value.")
    hint: str | None = Field(None, description="What to do about it.")
    request_id: str | None = Field(
        None, description="On 5xx answers: the id the server's log line names (X-Request-ID)."
    )


class HealthResponse(BaseModel):
    status: str
    model_loaded: bool


class ReadyResponse(BaseModel):
    status: str
    model_name: str | None = None
    model_version: str | None = None
    reason: str | None = None
    swap: dict[str, Any] | None = None
    # writers whose database is failing now ({"prediction_log": {"since", "error", "retries"}}):
    # predictions are still answered, their rows wait in memory
    degraded: dict[str, dict[str, Any]] | None = None


class FeatureInfo(BaseModel):
    name: str
    type: str
    required: bool


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None
    uri: str
    source: str
    flavor: str
    run_id: str | None
    loaded_at: str
    features: list[FeatureInfo]
    classes: list[Any] | None
    fallback_used: str | None
    load_failures: list[dict[str, str]]


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` that documents a JSON body the route parses itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed (the body, a header or a parameter).",
    401: "No credentials, or credentials that are not valid.",
    403: "The identity lacks the role this route needs.",
    404: "What the path or body names does not exist.",
    409: "The change conflicts with the current state.",
    413: "Body over MLOOP_MAX_BODY_BYTES.",
    415: "A content type this route does not read.",
    422: "The body or a parameter does not fit: the detail names the field.",
    429: "Rate limit exceeded; see Retry-After.",
    500: "The model failed (logged on the server with the request_id).",
    503: "Not ready yet (no model loaded, or the service is starting); see /ready.",
}


class MlflowErrorBody(BaseModel):
    """A 4xx of the MLflow scoring protocol (`/invocations`), as MLflow's own server answers."""

    error_code: str = Field(description="e.g. BAD_REQUEST.")
    message: str
    hint: str | None = None


def errors(
    *statuses: int, model: type[BaseModel] = ErrorBody, **described: str
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error statuses a route can answer, each with the common body.

    `described` overrides a description: `errors(404, s409="already labelled")`.
    """
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = described.get(f"s{status}", ERROR_DESCRIPTIONS[status])
        answers[status] = {"model": model, "description": text}
    return answers


ERRORS = errors(413, 422, 500, 503)
