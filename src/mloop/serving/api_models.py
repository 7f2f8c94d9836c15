"""Request and response bodies, as pydantic models for the OpenAPI docs.

The predict routes parse and serialize bodies themselves (orjson, column-wise validation);
these models only describe the shapes at /docs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Row = dict[str, Any] | list[Any]


class PredictRequest(BaseModel):
    features: Row = Field(
        description="One row: an object by feature name, or an array in signature order.",
        examples=[{"tenure_months": 12, "plan": "basic"}],
    )


class BatchRequest(BaseModel):
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
    error: str = Field(description="Error class, e.g. ValidationError.")
    detail: str = Field(description="What is wrong: the row, the feature, the value.")
    hint: str | None = Field(None, description="What to do about it.")


class HealthResponse(BaseModel):
    status: str
    model_loaded: bool


class ReadyResponse(BaseModel):
    status: str
    model_name: str | None = None
    model_version: str | None = None
    reason: str | None = None


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


ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Body over MLOOP_MAX_BODY_BYTES."},
    422: {"model": ErrorBody, "description": "The body does not fit the model signature."},
    500: {"model": ErrorBody, "description": "The model failed (logged on the server)."},
    503: {"model": ErrorBody, "description": "No model loaded yet; see /ready."},
}
