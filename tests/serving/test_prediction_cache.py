"""The prediction cache: identical rows answered from memory or Redis, per model version."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mloop.serving.app import create_app
from mloop.serving.cache import MemoryCache, cache_key
from tests.support import modelkit
from tests.support.apps import in_process
from tests.support.modelkit import sample


def _serve(settings, ref="churn@production"):
    """A client of the app, in-process."""
    return in_process(create_app(ref, settings, log_predictions=False))


def test_identical_rows_are_answered_from_the_cache(trained):
    rows = modelkit.json_rows(trained.frame.head(3))
    with _serve(trained.settings) as client:
        first = client.post("/predict", json={"features": rows[0]}).json()
        again = client.post("/predict", json={"features": rows[0]}).json()
        as_list = client.post("/predict", json={"features": list(rows[0].values())}).json()
        batch = client.post("/predict/batch", json={"instances": rows}).json()
        metrics = client.get("/metrics").text
        calls = sample(metrics, "mloop_batches_total", model_version="1")
    assert again["probabilities"] == first["probabilities"] == as_list["probabilities"]
    assert again["prediction_id"] != first["prediction_id"]  # every answer gets its own id
    assert uuid.UUID(again["prediction_id"]).version == 7  # time-ordered, like model answers
    # Row 0 hit three times (again, as a list, in the batch); the batch's two others missed.
    assert sample(metrics, "mloop_prediction_cache_total", model_version="1", result="hit") == 3
    assert sample(metrics, "mloop_prediction_cache_total", model_version="1", result="miss") == 3
    assert calls == 2  # the first request and the batch's two misses
    expected = trained.pipeline.predict_proba(trained.frame.head(3)).max(axis=1)
    assert [p["probability"] for p in batch["predictions"]] == pytest.approx(expected.tolist())


def test_cache_off_with_ttl_zero(trained):
    settings = trained.settings.model_copy(update={"cache_ttl_seconds": 0})
    row = modelkit.json_rows(trained.frame.head(1))[0]
    with _serve(settings) as client:
        for _ in range(2):
            assert client.post("/predict", json={"features": row}).status_code == 200
        metrics = client.get("/metrics").text
    assert sample(metrics, "mloop_batches_total", model_version="1") == 2
    assert sample(metrics, "mloop_prediction_cache_total", result="hit") == 0


def test_memory_cache_expires_and_evicts():
    cache = MemoryCache(size=2, ttl=60)

    async def scenario():
        await cache.set_many([("a", (1, [0.1, 0.9])), ("b", (0, None)), ("c", (1, None))])
        found = await cache.get_many(["a", "b", "c"])
        expired = MemoryCache(size=2, ttl=-1)
        await expired.set_many([("a", (1, None))])
        return found, await expired.get_many(["a"])

    found, expired = asyncio.run(scenario())
    assert found == [None, (0, None), (1, None)]  # "a" was the least recently used
    assert expired == [None]


def test_keys_name_the_model_version():
    row = {"x": 1, "y": "a"}
    assert cache_key("churn", "1", row) != cache_key("churn", "2", row)
    assert cache_key("churn", "1", row) == cache_key("churn", "1", {"y": "a", "x": 1})


def test_redis_cache_is_shared_and_a_new_version_never_sees_old_answers(
    trained, redis_url, tmp_path
):
    home = modelkit.home_settings(tmp_path)  # its own registry: two versions of churn
    modelkit.train_and_register(home)
    v2 = modelkit.train_and_register(home, alias="candidate")
    settings = home.model_copy(update={"cache_url": redis_url})
    row = modelkit.json_rows(trained.frame.head(1))[0]
    with _serve(settings) as one, _serve(settings) as two:
        first = one.post("/predict", json={"features": row}).json()
        shared = two.post("/predict", json={"features": row}).json()
        metrics_two = two.get("/metrics").text
    assert shared["probabilities"] == first["probabilities"]
    assert sample(metrics_two, "mloop_prediction_cache_total", result="hit") == 1
    assert sample(metrics_two, "mloop_batches_total", model_version="1") == 0

    with _serve(settings, f"churn/{v2.version}") as newer:
        answer = newer.post("/predict", json={"features": row}).json()
        metrics = newer.get("/metrics").text
    assert answer["model_version"] == v2.version
    version = v2.version
    assert sample(metrics, "mloop_prediction_cache_total", model_version=version, result="hit") == 0
    assert (
        sample(metrics, "mloop_prediction_cache_total", model_version=version, result="miss") == 1
    )


def test_redis_down_means_no_cache_not_errors(trained):
    settings = trained.settings.model_copy(update={"cache_url": "redis://127.0.0.1:1/0"})
    rows = modelkit.json_rows(trained.frame.head(3))
    with _serve(settings) as client:
        answers = [client.post("/predict", json={"features": r}) for r in rows + rows]
        batch = client.post("/predict/batch", json={"instances": rows})
        metrics = client.get("/metrics").text
    assert all(a.status_code == 200 for a in answers) and batch.status_code == 200
    assert sample(metrics, "mloop_prediction_cache_total", result="error") >= 1
    assert sample(metrics, "mloop_prediction_cache_total", result="hit") == 0
