"""Hot swaps: a server follows its alias, swaps versions under load without failing a request,
keeps the old version when the new one cannot load or predict, and refreshes on a webhook."""

from __future__ import annotations

import gc
import json
import random
import threading
import time
import uuid
import warnings
import weakref
from pathlib import Path
from urllib.parse import urlparse

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from mloop.model.loader import LoadedModel
from mloop.model.schema import Feature, InputSchema
from mloop.registry.records import ResolvedModel
from mloop.registry.refs import parse_model_ref
from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.serving.app import create_app
from mloop.serving.runtime import ModelRuntime
from mloop.serving.server import ServerThread
from mloop.settings import Settings
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.modelkit import sample
from tests.support.waiting import wait_for

NAME = "churn"


# -- a registry with two different versions of churn -------------------------------------------


def register(settings: Settings, seed: int, *, model=None) -> str:
    """Log and register a `churn` version fitted on the data of `seed` (or `model` as is)."""
    from mlflow.models import infer_signature

    configure_mlflow(settings)
    experiment_id = ensure_experiment("hot-swap-tests", settings)
    frame, y = modelkit.make_frame(seed=seed)
    pipeline = modelkit.make_pipeline().fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(frame, pipeline.predict(frame))
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                pipeline if model is None else model,
                name="model",
                signature=signature,
                input_example=frame.head(3) if model is None else None,
                serialization_format="cloudpickle",
                registered_model_name=NAME,
                pip_requirements=modelkit.PIP_REQUIREMENTS,  # no inference subprocess
            )
    return str(info.registered_model_version)


def move_alias(settings: Settings, version: str, alias: str = "production") -> None:
    """Straight through MLflow, as a user (or another tool) would."""
    uri = settings.tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(NAME, alias, version)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """churn v1 (at production) and v2, polled every 0.2 s, prediction cache off."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("hot-swap-home"))
    settings = settings.model_copy(update={"model_poll_seconds": 0.2, "cache_ttl_seconds": 0.0})
    assert register(settings, seed=7) == "1"
    assert register(settings, seed=8) == "2"
    move_alias(settings, "1")
    return settings


@pytest.fixture
def at_v1(home: Settings) -> Settings:
    move_alias(home, "1")
    return home


# -- the zero-failure test ---------------------------------------------------------------------


class Load:
    """Client threads sending /predict and /predict/batch until stopped; every answer kept."""

    def __init__(self, url: str, rows: list[dict], threads: int = 8) -> None:
        self.url, self.rows = url, rows
        self.results: list[tuple[str, list[int], int, dict | None, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def versions(self, since: int = 0) -> list[str]:
        with self._lock:
            done = self.results[since:]
        return [body["model_version"] for _, _, code, body, _ in done if code == 200 and body]

    def _run(self, seed: int) -> None:
        pick = random.Random(seed)
        n = len(self.rows)
        with httpx.Client(base_url=self.url, timeout=60) as http:
            turn = 0
            while not self._stop.is_set():
                turn += 1
                if turn % 2:
                    index = [pick.randrange(n)]
                    path, body = "/predict", {"features": self.rows[index[0]]}
                else:
                    index = [pick.randrange(n) for _ in range(3)]
                    path, body = "/predict/batch", {"instances": [self.rows[i] for i in index]}
                try:
                    response = http.post(path, json=body)
                    result = (path, index, response.status_code, response.json(), None)
                except Exception as exc:  # a transport error is a failed request too
                    result = (path, index, 0, None, f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self.results.append(result)


def test_promote_and_roll_back_under_load_fail_no_request(at_v1):
    from mloop.registry.service import Registry

    settings = at_v1
    frame, _ = modelkit.make_frame(rows=30, seed=99)
    rows = modelkit.json_rows(frame)
    expected = {
        version: mlflow.sklearn.load_model(f"models:/{NAME}/{version}").predict_proba(
            pd.DataFrame(rows)
        )
        for version in ("1", "2")
    }
    assert np.abs(expected["1"] - expected["2"]).max() > 0.05  # the versions answer differently

    app = create_app(f"{NAME}@production", settings, log_predictions=False)
    state = app.state.mloop
    runtime = state.runtime
    seen_batchers: list = []  # every batcher seen during the run

    def watch() -> None:
        for batcher in list(state.batchers.values()):
            if all(b is not batcher for b in seen_batchers):
                seen_batchers.append(batcher)

    with ServerThread(app) as server, Load(server.url, rows) as load:
        first = weakref.ref(runtime.require())
        wait_for(lambda: len(load.versions()) >= 50, "answers from version 1")

        Registry(settings).promote(NAME, "2", "Production", actor="test", reason="hot swap")
        wait_for(lambda: watch() or "2" in load.versions(), "answers from version 2")
        second = weakref.ref(runtime.require())
        seen = len(load.results)
        wait_for(lambda: watch() or len(load.versions(seen)) >= 50, "more answers")

        move_alias(settings, "1")  # the rollback, straight through MLflow
        rolled = len(load.results)
        wait_for(
            lambda: watch() or load.versions(rolled).count("1") >= 50, "answers from version 1"
        )
        watch()
        load.stop()

        # Drained: only the served model's batcher is left; every other one was closed.
        assert runtime.require().version == "1"
        wait_for(
            lambda: all(b.model is runtime.model for b in list(state.batchers.values())),
            "the swapped-out batchers to close",
        )
        live = list(state.batchers.values())
        assert len(seen_batchers) >= 2
        assert all(b.closed for b in seen_batchers if all(b is not x for x in live))
        live.clear()
        seen_batchers.clear()  # they hold their models: let go before checking those are freed
        # and the swapped-out models were freed (not kept in the frozen GC generation)
        wait_for(lambda: first() is None and second() is None, "the old models to be freed")

    assert len(load.results) >= 150
    failures = [r for r in load.results if r[2] != 200]
    assert failures == [], failures[:5]
    versions = [r[3]["model_version"] for r in load.results]
    assert set(versions) == {"1", "2"}
    for path, index, _, body, _ in load.results:  # each answer is its version's own answer
        probabilities = expected[body["model_version"]][index]
        if path == "/predict":
            got = [body["probabilities"]["0"], body["probabilities"]["1"]]
            assert got == pytest.approx(probabilities[0].tolist(), abs=1e-9)
        else:
            got = [p["probability"] for p in body["predictions"]]
            assert got == pytest.approx(probabilities.max(axis=1).tolist(), abs=1e-9)


# -- failures keep the old version ---------------------------------------------------------------


def break_artifacts(settings: Settings, version: str) -> None:
    """Delete the pickled model of `version` (its MLmodel stays: it looks fine until loaded)."""
    uri = settings.tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    location = Path(urlparse(client.get_model_version_download_uri(NAME, version)).path)
    removed = [p for p in location.rglob("model.pkl")]
    assert removed, f"no model.pkl under {location}"
    for path in removed:
        path.unlink()


def test_a_version_that_cannot_load_is_not_swapped_in(at_v1):
    settings = at_v1
    broken = register(settings, seed=9)
    break_artifacts(settings, broken)
    row = modelkit.json_rows(modelkit.make_frame(rows=1, seed=5)[0])[0]
    app = create_app(f"{NAME}@production", settings, log_predictions=False)
    with in_process(app) as http:
        move_alias(settings, broken)

        def failed():
            swap = http.get("/ready").json()["swap"]
            return swap if swap["state"] == "failed" else None

        swap = wait_for(failed, f"the swap to version {broken} to fail")
        assert swap["serving_version"] == "1"
        assert swap["last_failure"]["version"] == broken
        assert "cannot load model" in swap["last_failure"]["error"]
        ready = http.get("/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == "1"
        info = http.get("/model/info").json()
        assert info["version"] == "1"
        assert info["swap"]["last_failure"]["version"] == broken
        answer = http.post("/predict", json={"features": row})
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"
        metrics = http.get("/metrics").text
        assert sample(metrics, "mloop_model_swaps_total", result="failed") >= 1
        assert sample(metrics, "mloop_model_swaps_total", result="success") == 0
        assert sample(metrics, "mloop_model_served", reference="churn@production") == 1
        assert app.state.mloop.runtime.status()["swap"]["last_failure"]["version"] == broken

        move_alias(settings, "2")  # a good version: picked up by the next poll
        wait_for(lambda: http.get("/ready").json()["model_version"] == "2", "the swap to version 2")
        swap = http.get("/ready").json()["swap"]
        assert swap["state"] == "current"
        assert swap["last_swap"]["from_version"] == "1"
        assert swap["last_swap"]["to_version"] == "2"

        def served(metrics: str) -> dict[str, float]:
            return {
                s.labels["model_version"]: s.value
                for family in text_string_to_metric_families(metrics)
                for s in family.samples
                if s.name == "mloop_model_served"
            }

        # The swap thread updates the metrics just after it serves the new version.
        def swap_shown() -> str | None:
            text = http.get("/metrics").text
            counted = sample(text, "mloop_model_swaps_total", result="success") >= 1
            return text if counted and served(text) == {"2": 1.0} else None

        metrics = wait_for(swap_shown, "the swap to show in the metrics")
        assert sample(metrics, "mloop_model_swaps_total", result="success") == 1
        assert served(metrics) == {"2": 1.0}  # only the current version of the reference


class Refuses:
    """A classifier that loads fine and cannot predict."""

    classes_ = np.array([0, 1])

    def predict(self, frame):
        raise RuntimeError("this model cannot predict")

    predict_proba = predict


def test_a_version_that_fails_its_warm_up_is_not_swapped_in(at_v1):
    settings = at_v1
    refusing = register(settings, seed=7, model=Refuses())
    runtime = ModelRuntime(f"{NAME}@production", settings, use_fallbacks=False)
    assert runtime.load_once() and runtime.require().version == "1"
    move_alias(settings, refusing)
    outcome = runtime.refresh()
    assert (outcome.state, outcome.from_version, outcome.to_version) == ("failed", "1", refusing)
    assert "warm-up failed" in outcome.error and "this model cannot predict" in outcome.error
    assert runtime.require().version == "1"
    assert runtime.swap_status()["last_failure"]["version"] == refusing
    # not retried in a tight loop: the next refresh before the backoff does not load it again
    attempts = runtime.swap_status()["last_failure"]["attempts"]
    assert runtime.refresh().state == "failed"
    assert runtime.swap_status()["last_failure"]["attempts"] == attempts


def test_a_pinned_reference_never_moves(at_v1):
    runtime = ModelRuntime(f"{NAME}/1", at_v1, use_fallbacks=False)
    assert runtime.load_once()
    model = runtime.require()
    move_alias(at_v1, "2")
    outcome = runtime.refresh(force=True)
    assert (outcome.state, outcome.to_version) == ("pinned", "1")
    assert runtime.require() is model
    assert runtime.swap_status()["state"] == "pinned"


# -- the webhook ---------------------------------------------------------------------------------


def delivery(secret: str, payload: dict, *, age: float = 0.0) -> tuple[bytes, dict[str, str]]:
    """An MLflow registry webhook delivery, signed by MLflow's own function."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = json.dumps(payload)
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time() - age))
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, stamp, body),
    }
    return body.encode(), headers


def alias_event(version: str) -> dict:
    return {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-11-26T10:00:00+00:00",
        "data": {"name": NAME, "alias": "production", "version": version},
    }


def test_the_refresh_webhook_swaps_at_once_and_checks_mlflow_signatures(at_v1, tmp_path):
    from mloop.security.identities import IdentityStore
    from mloop.security.keys import KeyStore
    from mloop.store import open_database

    secret = "s3cret-webhook"
    auth_home = tmp_path / "auth-home"
    settings = at_v1.model_copy(
        update={
            "home": auth_home,
            "database_url": f"sqlite:///{auth_home / 'mloop.db'}",  # identities and keys
            "auth": "on",
            "model_poll_seconds": 0,  # only the webhook moves it
            "model_webhook_secret": SecretStr(secret),
        }
    )
    settings.ensure_home()
    database = open_database(settings)
    keys = {}
    for name, role in (("eve", "viewer"), ("bob", "ml_lead")):
        IdentityStore(database).add(name, [role], actor="test")
        keys[name] = KeyStore(database).create(name, actor="test")[0]
    app = create_app(f"{NAME}@production", settings, log_predictions=False)
    with in_process(app) as http:
        move_alias(settings, "2")
        assert http.post("/models/refresh").status_code == 401  # no credentials, no signature
        body, headers = delivery(secret, alias_event("2"))
        tampered = body.replace(b'"version": "2"', b'"version": "1"')
        refused = http.post("/models/refresh", content=tampered, headers=headers)
        assert refused.status_code == 401 and "does not match" in refused.json()["detail"]
        body_old, stale = delivery(secret, alias_event("2"), age=301)
        refused = http.post("/models/refresh", content=body_old, headers=stale)
        assert refused.status_code == 401 and "stale" in refused.json()["detail"]
        assert http.get("/ready").json()["model_version"] == "1"  # nothing moved

        answer = http.post("/models/refresh", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "refreshed": [
                {
                    "reference": "churn@production",
                    "from_version": "1",
                    "to_version": "2",
                    "state": "swapped",
                }
            ]
        }
        assert http.get("/ready").json()["model_version"] == "2"  # served when answered

        # mloop callers need ml_lead; {"model": NAME} limits the refresh to that model
        viewer = {"X-API-Key": keys["eve"]}
        lead = {"X-API-Key": keys["bob"]}
        assert http.post("/models/refresh", headers=viewer).status_code == 403
        answer = http.post("/models/refresh", json={"model": NAME}, headers=lead)
        assert [r["state"] for r in answer.json()["refreshed"]] == ["unchanged"]
        other = http.post("/models/refresh", json={"model": "other"}, headers=lead)
        assert other.status_code == 404 and "'other'" in other.json()["detail"]
        bad = http.post("/models/refresh", json={"models": 3}, headers=lead)
        assert bad.status_code == 422 and "expected an empty body" in bad.json()["detail"]


def test_a_promotion_through_this_server_is_served_when_it_answers(at_v1):
    settings = at_v1.model_copy(update={"model_poll_seconds": 0})
    app = create_app(f"{NAME}@production", settings, log_predictions=False)
    with in_process(app, timeout=60) as http:
        moved = http.post(f"/models/{NAME}/versions/2/promote", json={"stage": "Production"})
        assert moved.status_code == 200, moved.text
        assert http.get("/ready").json()["model_version"] == "2"
        back = http.post(f"/models/{NAME}/rollback", json={"stage": "Production"})
        assert back.status_code == 200, back.text
        assert http.get("/ready").json()["model_version"] == "1"


# -- ModelRuntime.refresh without a registry ---------------------------------------------------


class FakeRegistry:
    """An alias whose version the test moves; versions in `broken` fail to load."""

    def __init__(self) -> None:
        self.version = "1"
        self.broken: set[str] = set()
        self.loads: list[str] = []

    def resolve(self, ref) -> ResolvedModel:
        return ResolvedModel(ref.name, self.version, f"fake:{ref.name}/{self.version}", ref.alias)

    def load(self, uri: str, _settings) -> LoadedModel:
        if "@" in uri:  # the first load gets the reference itself
            uri = self.resolve(parse_model_ref(uri)).uri
        version = uri.rsplit("/", 1)[1]
        self.loads.append(version)
        if version in self.broken:
            raise OSError(f"artifact of version {version} is missing")
        model = LoadedModel(
            name="t",
            version=version,
            uri=uri,
            flavor="test",
            run_id=None,
            schema=InputSchema([Feature("x", "double")]),
            classes=None,
            _runner=lambda frame: (np.zeros(len(frame)), None),
        )
        model._native = Node()  # in a reference cycle: only the cyclic GC can free it
        return model


class Node:
    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(mloop_home):
    registry, clock = FakeRegistry(), Clock()
    settings = mloop_home.model_copy(update={"model_poll_seconds": 10.0})
    runtime = ModelRuntime(
        "t@production",
        settings,
        loader=registry.load,
        resolver=registry.resolve,
        clock=clock,
        use_fallbacks=False,
        freeze_heap=True,  # as `mloop serve` runs it
    )
    events = []
    runtime.listeners.append(events.append)
    assert runtime.load_once()
    yield registry, clock, runtime, events
    runtime.stop()


def test_refresh_swaps_only_when_the_alias_moved(fake):
    registry, _, runtime, events = fake
    assert runtime.refresh().state == "unchanged"
    registry.version = "2"
    outcome = runtime.refresh()
    assert outcome.to_dict() == {
        "reference": "t@production",
        "from_version": "1",
        "to_version": "2",
        "state": "swapped",
    }
    assert runtime.require().version == "2"
    assert runtime.require().alias == "production"
    assert runtime.require().source == "t@production"
    assert [(e.kind, e.from_version, e.to_version) for e in events] == [
        ("loaded", None, "1"),
        ("swapped", "1", "2"),
    ]
    assert registry.loads == ["1", "2"]


def test_a_failed_version_backs_off_and_is_picked_up_once_loadable(fake):
    registry, clock, runtime, events = fake
    registry.version, registry.broken = "2", {"2"}
    outcome = runtime.refresh()
    assert (outcome.state, outcome.to_version) == ("failed", "2")
    assert "artifact of version 2 is missing" in outcome.error
    assert runtime.require().version == "1"
    failure = runtime.swap_status()["last_failure"]
    assert (failure["version"], failure["attempts"]) == ("2", 1)
    assert events[-1].kind == "failed"

    assert runtime.refresh().state == "failed"  # within the backoff: not loaded again
    assert registry.loads == ["1", "2"]
    clock.now += 10.0  # one poll interval later it is tried again (and fails again)
    runtime.refresh()
    assert registry.loads == ["1", "2", "2"]
    assert runtime.swap_status()["last_failure"]["attempts"] == 2
    clock.now += 10.0  # the backoff doubled: still waiting
    runtime.refresh()
    assert registry.loads == ["1", "2", "2"]
    assert runtime.refresh(force=True).state == "failed"  # an explicit refresh always tries
    assert registry.loads == ["1", "2", "2", "2"]

    registry.broken.clear()  # the artifact is repaired: picked up after the backoff
    clock.now += 1000.0
    assert runtime.refresh().state == "swapped"
    assert runtime.require().version == "2"
    assert runtime.swap_status()["state"] == "current"


def test_concurrent_refreshes_load_a_new_version_once(fake):
    registry, _, runtime, _ = fake
    registry.version = "2"
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(runtime.refresh())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert registry.loads == ["1", "2"]
    assert {o.to_version for o in outcomes} == {"2"}
    assert "swapped" in {o.state for o in outcomes} <= {"swapped", "unchanged"}


def test_a_swapped_out_model_is_freed_even_inside_a_reference_cycle(fake):
    registry, _, runtime, _ = fake
    old = weakref.ref(runtime.require()._native)
    assert gc.get_freeze_count() > 0  # the first load froze the heap, the model's cycle too
    registry.version = "2"
    assert runtime.refresh().state == "swapped"
    runtime.wait_reclaimed(120)
    assert old() is None  # unfrozen and collected once released, not kept in the frozen heap
    assert gc.get_freeze_count() > 0  # and the heap is frozen again
