"""The server's OpenAPI document, completed with what cross-cutting layers answer.

Routes declare their own statuses (`api_models.errors`); this adds what the route table and
the security layer decide for every route alike: the common error body on FastAPI's 422, the
auth schemes (an API key in `X-API-Key`, or `Authorization: Bearer` with a key or a JWT), and,
on the routes they guard, the security requirement with 401/403 (auth on) and 429 (a rate
limit set). So the document states what this server enforces: with auth off it declares no
requirement, which fuzzers check (`tests/reliability/fuzz_cases.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from mloop.security.access import Role, api_routes
from mloop.serving.api_models import ERROR_DESCRIPTIONS, ErrorBody
from mloop.settings import Settings

SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`mlk_...`) or a JWT (`mloop token`).",
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def complete(doc: dict[str, Any], app: FastAPI, settings: Settings, *, auth: bool) -> None:
    """Add the error body, schemes, requirements and auth statuses to `doc` in place."""
    roles = {
        (path, method.lower()): role
        for path, methods, role in api_routes(app)
        for method in methods
    }
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components["securitySchemes"] = SCHEMES
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            answers = operation.setdefault("responses", {})
            if "422" in answers:  # FastAPI's own model is not what the handlers send
                answers["422"]["content"] = {"application/json": {"schema": _ERROR_REF}}
            role = roles.get((path, method))
            closed_metrics = path == "/metrics" and not settings.metrics_public
            guarded = role is not Role.PUBLIC or closed_metrics
            if auth and guarded:
                operation["security"] = [{name: []} for name in SCHEMES]
                for status in (401, 403):
                    answers.setdefault(str(status), _error(status))
            if settings.rate_limit > 0 and guarded:
                answers.setdefault("429", _error(429))
    unused = ("HTTPValidationError", "ValidationError")
    text = repr(doc.get("paths"))
    for name in unused:
        if f"#/components/schemas/{name}'" not in text:
            schemas.pop(name, None)


def install_openapi(app: FastAPI, settings: Settings, *, auth: bool) -> None:
    """Serve `app`'s document completed by `complete` (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            complete(doc, app, settings, auth=auth)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
