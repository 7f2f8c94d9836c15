"""The whole HTTP API fuzzed from its own OpenAPI document (schemathesis, every check).

A real uvicorn server on 127.0.0.1 serves a small model trained into a temp store; the
document is read from its `/openapi.json`, data plane and control plane alike. Three runs:
auth off, auth on with an admin key, and auth on with a viewer key (every refusal must be a
documented 401/403). Every check schemathesis has is on: no 5xx, status codes, content types
and bodies as documented, negative data rejected, valid data accepted, auth enforced as
declared. The cases are counted, and the last test fails when they drop under MIN_CASES.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from mloop.security.access import Role, api_routes
from mloop.security.identities import IdentityStore
from mloop.security.keys import KeyStore
from mloop.serving.app import create_app
from mloop.serving.console.headers import is_console
from mloop.serving.server import ServerThread
from mloop.store import open_database
from tests.support.modelkit import home_settings, train_and_register

pytestmark = pytest.mark.fuzz

MIN_CASES = 2000
EXAMPLES = 20  # per operation and run (hypothesis stops early where fewer cases exist)
CASES: Counter[str] = Counter()  # run -> cases sent
OPERATIONS: dict[str, set[str]] = {}  # run -> operations fuzzed

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module", autouse=True)
def deep_enough_stack() -> Iterator[None]:
    """Room for schemathesis' recursive coverage phase. Deep in it, hypothesis parses a large
    source file to describe a lambda; past the recursion limit CPython 3.11.7's AST builder
    reports "SystemError: AST constructor recursion depth mismatch" instead of a RecursionError
    (python/cpython#106905), which failed the first fuzz run on a clean clone."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 10_000))
    yield
    sys.setrecursionlimit(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A temp home with churn@production and two keys: (settings, admin key, viewer key)."""
    settings = home_settings(tmp_path_factory.mktemp("fuzz") / "home")
    train_and_register(settings)
    database = open_database(settings)
    keys = {}
    for name, role in (("root", "admin"), ("eve", "viewer")):
        IdentityStore(database).add(name, [role], actor="test")
        keys[role] = KeyStore(database).create(name, actor="test")[0]
    return settings, keys


def _serve(settings, auth: str) -> Iterator[ServerThread]:
    app = create_app("churn@production", settings.model_copy(update={"auth": auth}))
    with ServerThread(app) as server:
        yield server


@pytest.fixture(scope="module")
def server_off(store) -> Iterator[ServerThread]:
    yield from _serve(store[0], "off")


@pytest.fixture(scope="module")
def server_on(store) -> Iterator[ServerThread]:
    yield from _serve(store[0], "on")


# Valid-by-schema data may still not fit the served model (a feature it lacks, a category it
# never saw): the document can state a body's shape, the model decides its values and answers
# a documented 422 naming the problem. Every other check keeps schemathesis' defaults.
# The MLflow scoring protocol (/invocations) answers a body that does not fit with MLflow's
# 400 BAD_REQUEST, as MLflow's own server does. /predict/stream reads any text: each line is
# checked alone and a bad one gets an error line in its 200 stream, so no body is "negative".
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        "operations": [
            {
                "include-path": "/invocations",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            },
            {"include-path": "/predict/stream", "generation": {"mode": "positive"}},
        ],
    }
)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx, value) -> bytes:
    """/predict/stream's body: text as it is, anything else as one JSON line."""
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else json.dumps(value).encode() + b"\n"


def _schema(server: ServerThread):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=CONFIG)


@pytest.fixture(scope="module")
def schema_off(server_off):
    return _schema(server_off)


@pytest.fixture(scope="module")
def schema_on(server_on):
    return _schema(server_on)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 renames the node through `_nodeid`, gone in pytest 9.2: give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


off = schemathesis.pytest.from_fixture("schema_off")
on = schemathesis.pytest.from_fixture("schema_on")


def _call(run: str, case, headers: dict[str, str] | None = None):
    CASES[run] += 1
    OPERATIONS.setdefault(run, set()).add(case.operation.label)
    return case.call_and_validate(headers=headers, timeout=60)


@off.parametrize()
@FUZZ
def test_fuzz_auth_off(case):
    _call("off", case)


@on.parametrize()
@FUZZ
def test_fuzz_admin(case, store):
    _call("admin", case, {"X-API-Key": store[1]["admin"]})


@on.parametrize()
@FUZZ
def test_fuzz_viewer(case, store, server_on):
    """A viewer key: besides every check, a route needing more than `viewer` never acts.

    It answers 403; or 400/422 for a body that is not JSON at all, which FastAPI decodes for a
    route with a body model before any dependency (the role check among them) runs, or 422 for
    a repeated query parameter (serving.query, an app-wide dependency: it runs first).
    """
    response = _call("viewer", case, {"X-API-Key": store[1]["viewer"]})
    role = _roles(server_on.app).get((case.operation.path, case.operation.method.upper()))
    if role in (Role.PUBLIC, Role.VIEWER) or case.method.upper() != case.operation.method.upper():
        return
    undecodable = ("JSON decode error", "error parsing the body", "times: give it once")
    refused = response.status_code == 403 or (
        response.status_code in (400, 422) and any(text in response.text for text in undecodable)
    )
    assert refused, (case.operation.label, response.status_code, response.text)


def _roles(app) -> dict[tuple[str, str], Role | None]:
    return {(path, m): role for path, methods, role in api_routes(app) for m in methods}


def test_fuzzing_sent_enough_cases():
    """Runs after the fuzz tests (file order): every run fuzzed, MIN_CASES in all."""
    print(f"fuzz cases: {dict(CASES)}, operations: { {k: len(v) for k, v in OPERATIONS.items()} }")
    assert set(CASES) == {"off", "admin", "viewer"}, CASES
    assert sum(CASES.values()) >= MIN_CASES, CASES


def test_every_route_is_documented_with_its_auth(server_on, server_off):
    """Each API route is in /openapi.json; guarded ones name the schemes and 401/403 (auth on)."""
    documented = httpx.get(f"{server_on.url}/openapi.json", timeout=60).json()
    assert set(documented["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    for path, methods, role in api_routes(server_on.app):
        if is_console(path):  # the web console's HTML pages stay out of the API's schema
            continue
        for method in methods:
            operation = documented["paths"].get(path, {}).get(method.lower())
            assert operation is not None, f"{method} {path} is not in the OpenAPI document"
            if role is not Role.PUBLIC:
                assert operation["security"], f"{method} {path}"
                assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
    plain = httpx.get(f"{server_off.url}/openapi.json", timeout=60).json()
    assert not any("security" in op for ops in plain["paths"].values() for op in ops.values())
