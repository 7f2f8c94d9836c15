"""No route is left without a declared role: each one says who may call it."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from mloop.governance.audit_writer import is_prediction
from mloop.security.access import Role, api_routes
from mloop.serving.app import create_app
from mloop.serving.console.headers import is_console
from mloop.serving.internals import app_routes
from mloop.serving.routes import plane


def test_every_api_route_declares_a_role(mloop_home):
    app = create_app("churn@production", mloop_home, log_predictions=False)
    routes = api_routes(app)
    # the web console (/ui, and / redirecting there) checks its own sessions: tests/console
    undeclared = [
        f"{sorted(methods)} {path}"
        for path, methods, role in routes
        if role is None and not is_console(path)
    ]
    assert undeclared == [], f"routes without `dependencies=[requires(Role...)]`: {undeclared}"
    assert {"/predict", "/predict/batch", "/health", "/model/info"} <= {p for p, _, _ in routes}


def test_health_is_public_and_predict_needs_predictor(mloop_home):
    app = create_app("churn@production", mloop_home, log_predictions=False)
    roles = {path: role for path, _, role in api_routes(app)}
    assert roles["/health"] is Role.PUBLIC
    assert roles["/ready"] is Role.PUBLIC
    assert roles["/predict"] is Role.PREDICTOR


def test_each_route_declares_its_plane_once_and_the_fast_path_reads_it(mloop_home):
    app = create_app("churn@production", mloop_home, log_predictions=False)
    planes = {
        (method, path): plane(route)
        for path, route in app_routes(app)
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    data = {key for key, where in planes.items() if where == "data"}
    assert data == {
        ("POST", "/predict"),
        ("POST", "/predict/batch"),
        ("POST", "/predict/stream"),
        ("POST", "/predict/async"),
        ("POST", "/invocations"),
        ("POST", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer"),
        ("POST", "/deployments/{name}/predict"),
        ("POST", "/deployments/{name}/predict/batch"),
    }
    # The audit's view of which calls answer predictions agrees with the declarations.
    for (method, path), where in planes.items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        assert is_prediction(method, concrete) is (where == "data"), (method, path)
    fast = {(path, role) for path, _, role in app.fast_routes()}
    assert fast == {("/predict", Role.PREDICTOR), ("/predict/batch", Role.PREDICTOR)}
