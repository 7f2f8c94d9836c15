"""Console fixtures: demo-like data on a home with auth on, an in-process app, logins, and
the browser harness (a real `mloop serve` and Playwright driving Debian's chromium).

Demo data (`console_data`, one per module): churn/1 in Production; churn/2 trained (major
change, alias `candidate`, a model card, one extra metric) with a pending approval for
Production submitted by `alice`; the policy needs one `compliance` approval; a default
deployment `churn`; a registered model named `<script>alert(1)<script>` (MLflow refuses '/')
whose description and tag hold HTML; identities `viewer` (viewer), `approver` (compliance),
`deployer` (ml_lead) with passwords `<name>-password`, and govkit's people with API keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mloop.data import generate_churn
from mloop.settings import Settings
from mloop.stats.profile import ReferenceProfile
from tests.support import govkit
from tests.support.apps import in_process

POLICY = {
    "stages": {
        "Production": {
            "approvers": ["compliance"],
            "gates": {"metrics": {"accuracy": 0.6}, "model_card": True},
        }
    }
}
CONSOLE_PEOPLE = {"viewer": ["viewer"], "approver": ["compliance"], "deployer": ["ml_lead"]}
SCRIPT_NAME = "<script>alert(1)<script>"  # MLflow refuses '/' in model names
HTML_TEXT = '<img src=x onerror="alert(2)"><b>bold</b>'
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')


@dataclass
class ConsoleData:
    settings: Settings
    keys: dict[str, str]  # identity -> API key
    approval_id: int


def password(name: str) -> str:
    return f"{name}-password"


def build_console_data(home: Path, **settings_extra) -> ConsoleData:
    """Everything the console shows, on a fresh home (see the module docstring)."""
    import mlflow

    from mloop.deploy.service import DeploymentService
    from mloop.governance.approvals import ApprovalService
    from mloop.governance.cards import write_card
    from mloop.governance.governed import governed_registry
    from mloop.security.identities import IdentityStore
    from mloop.security.passwords import PasswordStore
    from mloop.store import open_database

    settings = govkit.settings_at(home, auth="on", **settings_extra)
    data = home.parent / "churn.csv"
    govkit.train_version(settings, data)
    governed_registry(settings).promote("churn", "1", "Production", actor="test")
    govkit.write_policy(settings, POLICY)
    keys = govkit.add_people(settings)
    govkit.train_version(settings, data, change="major")
    database = open_database(settings)
    for name, roles in CONSOLE_PEOPLE.items():
        IdentityStore(database).add(name, roles, actor="test")
        PasswordStore(database).set(name, password(name), actor="test")
    client = mlflow.MlflowClient(settings.tracking_uri)
    client.set_registered_model_alias("churn", "candidate", "2")
    # a metric only v2's run has: the compare page has a difference to show
    client.log_metric(client.get_model_version("churn", "2").run_id, "lift_at_10", 2.5)
    client.create_registered_model(SCRIPT_NAME, tags={"note": HTML_TEXT}, description=HTML_TEXT)
    write_card(settings, "churn/2", home.parent / "card", owner="alice", intended_use="retention")
    request = ApprovalService(settings).submit(
        "churn", "2", "Production", requester="alice", comment="v2 <em>please</em>"
    )
    DeploymentService(settings).apply(
        {
            "name": "churn",
            "default": True,
            "policy": "single",
            "variants": [{"name": "main", "model": "churn@production"}],
        },
        "test",
    )
    return ConsoleData(settings, keys, request.id)


@pytest.fixture(scope="module")
def console_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleData]:
    import mlflow

    home = tmp_path_factory.mktemp("console") / "home"
    yield build_console_data(home)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def console_http(console_data: ConsoleData) -> Iterator[httpx.Client]:
    """The server app (churn@production, auth on) in-process; cookies kept between calls."""
    from mloop.serving.app import create_app

    with in_process(create_app("churn@production", console_data.settings)) as http:
        yield http


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no form with a csrf_token on the page"
    return found.group(1)


def login_token_of(html: str) -> str:
    """The login CSRF token of a login form page."""
    found = _LOGIN_TOKEN.search(html)
    assert found, "no login_token on the login form"
    return found.group(1)


def login_token(http: httpx.Client) -> str:
    """The login form's CSRF token (the GET also sets the cookie the token is signed over)."""
    page = http.get("/ui/login")
    assert page.status_code == 200, page.text[-500:]
    return login_token_of(page.text)


def post_login(http: httpx.Client, fields: dict[str, str]) -> httpx.Response:
    """POST /ui/login from the login form, as a browser does: GET it first for its token."""
    return http.post("/ui/login", data={"login_token": login_token(http), **fields})


def login(http: httpx.Client, name: str, *, key: str | None = None) -> str:
    """Log `name` in (password, or `key`), replacing any session; returns its CSRF token."""
    http.cookies.clear()
    fields = {"api_key": key} if key else {"username": name, "password": password(name)}
    answer = post_login(http, {**fields, "next": "/ui/models"})
    assert answer.status_code == 303, answer.text
    page = http.get("/ui/models")
    assert page.status_code == 200 and f">{name}<" in page.text
    return csrf_of(page.text)


@pytest.fixture(scope="module")
def live_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ConsoleData]]:
    """A real `mloop serve churn@production` (uvicorn, auth on) on the demo data: (url, data)."""
    import mlflow

    from tests.support.serverproc import served

    home = tmp_path_factory.mktemp("live-console") / "home"
    data = build_console_data(home)
    with served(data.settings, folder=home.parent, MLOOP_AUTH="on") as server:
        yield server.url, data
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's chromium through Playwright, one per module."""
    from tests.console.browser import launch, start_playwright

    playwright = start_playwright()
    try:
        browser = launch(playwright)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def console_page(chromium, live_console, request: pytest.FixtureRequest):
    """A fresh page on the live console; any browser console or page error fails the test."""
    from tests.console.browser import ConsolePage

    page = ConsolePage(chromium, live_console[0], request.node.name)
    yield page
    page.close()
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)


def churn_features(rows: int, seed: int, drift: bool = False) -> list[dict]:
    """Churn feature rows (no id, no label), as a client would send them."""
    frame = generate_churn(rows, seed=seed, drift=drift).drop(columns=["customer_id", "churn"])
    return frame.to_dict(orient="records")


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    """A reference profile of 600 churn rows."""
    return ReferenceProfile.from_frame(
        generate_churn(600, seed=1).drop(columns=["customer_id", "churn"])
    )
