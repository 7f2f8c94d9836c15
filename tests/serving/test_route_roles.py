"""No route is left without a declared role: each one says who may call it."""

from __future__ import annotations

from mloop.security.access import Role, api_routes
from mloop.serving.app import create_app


def test_every_api_route_declares_a_role(mloop_home):
    app = create_app("churn@production", mloop_home, log_predictions=False)
    routes = api_routes(app)
    undeclared = [f"{sorted(methods)} {path}" for path, methods, role in routes if role is None]
    assert undeclared == [], f"routes without `dependencies=[requires(Role...)]`: {undeclared}"
    assert {"/predict", "/predict/batch", "/health", "/model/info"} <= {p for p, _, _ in routes}


def test_health_is_public_and_predict_needs_predictor(mloop_home):
    app = create_app("churn@production", mloop_home, log_predictions=False)
    roles = {path: role for path, _, role in api_routes(app)}
    assert roles["/health"] is Role.PUBLIC
    assert roles["/ready"] is Role.PUBLIC
    assert roles["/predict"] is Role.PREDICTOR
