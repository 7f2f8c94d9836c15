"""Private third-party internals are checked at start-up; a missing one falls back to the
standard path and says why."""

from __future__ import annotations

import hashlib
import logging

import httpx
import orjson
import pytest

from mloop.governance.audit import audit_log
from mloop.serving import internals
from mloop.serving.app import create_app
from mloop.serving.http import HTTP_PROTOCOL, protocol_for
from mloop.serving.server import ServerThread
from tests.support import modelkit


class _RequestWithoutBodyCache:
    async def body(self) -> bytes:  # another Starlette: no `_body`
        return b""


class _OtherProtocol:
    def on_headers_complete(self) -> None:  # another uvicorn: its cycle built elsewhere
        self.started = True


def test_this_environment_uses_every_internal():
    assert internals.AVAILABLE.problems == {}
    assert HTTP_PROTOCOL is not None and HTTP_PROTOCOL != "auto"


def test_a_changed_internal_is_switched_off_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="mloop.serving"):
        found = internals.probe(_RequestWithoutBodyCache, _OtherProtocol)
    assert not found.request_body_cache and not found.httptools_cycle
    assert found.sklearn_tree
    assert set(found.problems) == {"starlette Request._body", "uvicorn HttpToolsProtocol.cycle"}
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "no longer caches the body" in logged and "using the standard path" in logged
    assert protocol_for(found.httptools_cycle) == "auto"
    assert not internals.probe(protocol_cls=None, quiet=True).httptools_cycle  # no httptools


@pytest.fixture
def fallback(monkeypatch) -> internals.Internals:
    """The process as it would run on a Starlette whose Request no longer has `_body`."""
    forced = internals.probe(_RequestWithoutBodyCache, quiet=True)
    monkeypatch.setattr(internals, "AVAILABLE", forced)
    return forced


def test_the_standard_body_path_serves_and_audits_the_same(trained, fallback):
    settings = trained.settings.model_copy(update={"audit_api_calls": True})
    body = orjson.dumps({"features": modelkit.json_rows(trained.frame.head(1))[0]})
    app = create_app("churn@production", settings, log_predictions=False)
    with ServerThread(app) as server:
        answer = httpx.post(f"{server.url}/predict", content=body, timeout=60)
        slow = httpx.post(f"{server.url}/predict/batch", content=b"{", timeout=60)
    assert answer.status_code == 200 and answer.json()["prediction"] is not None
    assert slow.status_code == 422
    digests = {
        row["target"]: row["detail"].get("input_sha256")
        for row in audit_log(settings).rows()
        if row["action"] == "api.call"
    }
    assert digests["POST /predict"] == hashlib.sha256(body).hexdigest()
    assert digests["POST /predict/batch"] == hashlib.sha256(b"{").hexdigest()
