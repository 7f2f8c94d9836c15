"""Adaptive batching: idle requests run at once, busy ones share a call, failures stay alone."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import httpx
import pytest

from mloop.errors import DeadlineExceededError
from mloop.model.loader import LoadedModel
from mloop.registry.resolve import load_model
from mloop.serving.app import create_app
from mloop.serving.batcher import Batcher, ModelCallError
from mloop.serving.metrics import ServingMetrics
from mloop.serving.server import ServerThread
from tests.support import modelkit
from tests.support.modelkit import sample


class Gate:
    """Runs the real model, but each call first waits until the test opens the gate."""

    def __init__(self, model: LoadedModel) -> None:
        self.inner = dataclasses.replace(model)
        self.open = threading.Event()
        self.calls: list[int] = []
        self.entered = threading.Semaphore(0)

    def __call__(self, frame):
        self.calls.append(len(frame))
        self.entered.release()
        self.open.wait(30)
        return self.inner.predict(frame)


def gated(model: LoadedModel) -> tuple[LoadedModel, Gate]:
    gate = Gate(model)
    return dataclasses.replace(model, _runner=gate), gate


def make_batcher(model, published, **limits) -> Batcher:
    options = {"max_batch_size": 64, "max_wait_ms": 60_000.0, "max_in_flight": 1}
    options.update(limits)
    return Batcher(
        model,
        metrics=ServingMetrics(),
        publish=lambda batch, frame: published.append((batch, frame)),
        **options,
    )


@pytest.fixture(scope="module")
def churn(trained) -> LoadedModel:
    return load_model("churn/1", trained.settings)


def test_an_idle_model_answers_at_once_and_busy_requests_share_one_call(churn, trained):
    model, gate = gated(churn)
    rows = modelkit.json_rows(trained.frame.head(9))
    published: list = []

    async def scenario():
        batcher = make_batcher(model, published)  # max_wait 60 s: only coalescing can help
        first = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[:1]), rows[:1]))
        await asyncio.to_thread(gate.entered.acquire)  # the first call started, alone
        rest = [
            asyncio.ensure_future(batcher.submit(model.schema.validate([r]), [r])) for r in rows[1:]
        ]
        await asyncio.sleep(0.05)
        assert batcher.queued_rows == 8
        gate.open.set()
        answers = await asyncio.gather(first, *rest)
        batcher.close()
        return answers

    answers = asyncio.run(scenario())
    assert gate.calls == [1, 8]  # one call for the first, one for the eight that waited
    expected = trained.pipeline.predict_proba(trained.frame.head(9))
    for i, answer in enumerate(answers):
        assert answer.probabilities[0].tolist() == expected[i].tolist()
        assert len(answer.ids) == 1
    assert [len(batch) for batch, _ in published] == [1, 8]
    assert len(published[1][1]) == 8  # one frame per model call, handed to listeners
    ids = [i for batch, _ in published for i in batch.ids]
    assert sorted(ids) == sorted(a.ids[0] for a in answers)


def test_a_batch_never_exceeds_max_batch_size(churn, trained):
    model, gate = gated(churn)
    rows = modelkit.json_rows(trained.frame.head(11))

    async def scenario():
        batcher = make_batcher(model, [], max_batch_size=4)
        futures = [
            asyncio.ensure_future(batcher.submit(model.schema.validate([r]), [r])) for r in rows
        ]
        await asyncio.to_thread(gate.entered.acquire)
        await asyncio.sleep(0.05)
        gate.open.set()
        await asyncio.gather(*futures)
        batcher.close()

    asyncio.run(scenario())
    assert max(gate.calls) <= 4 and sum(gate.calls) == 11


def test_a_failing_request_fails_alone(strict_model):
    model = load_model("strict/1", strict_model.settings)
    gated_model, gate = gated(model)
    rows = modelkit.json_rows(strict_model.frame.head(4))
    bad = {**rows[2], "plan": "platinum"}  # the strict encoder raises on an unseen category
    published: list = []

    async def scenario():
        batcher = make_batcher(gated_model, published)
        first = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[:1]), rows[:1]))
        await asyncio.to_thread(gate.entered.acquire)
        batch = [rows[1], bad, rows[3]]
        waiting = [
            asyncio.ensure_future(batcher.submit(model.schema.validate([r]), [r])) for r in batch
        ]
        await asyncio.sleep(0.05)
        gate.open.set()
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
        batcher.close()
        return results, batcher

    results, batcher = asyncio.run(scenario())
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[1], BaseException) and not isinstance(results[3], BaseException)
    assert isinstance(results[2], ModelCallError)
    assert "ValueError" in results[2].message
    metrics = batcher.metrics.render().decode()
    assert sample(metrics, "mloop_batch_split_retries_total", model_version="1") == 1.0
    answered = [i for batch, _ in published for i in batch.ids]
    assert len(answered) == 3  # the failed row is not logged as answered


def test_a_request_past_its_deadline_gets_deadline_exceeded(churn, trained):
    model, gate = gated(churn)
    rows = modelkit.json_rows(trained.frame.head(2))
    published: list = []

    async def scenario():
        batcher = make_batcher(model, published)
        first = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[:1]), rows[:1]))
        await asyncio.to_thread(gate.entered.acquire)
        with pytest.raises(DeadlineExceededError, match="deadline of 50 ms"):
            await batcher.submit(model.schema.validate(rows[1:]), rows[1:], timeout=0.05)
        gate.open.set()
        await first
        await asyncio.sleep(0.05)
        batcher.close()
        return batcher

    batcher = asyncio.run(scenario())
    assert gate.calls == [1]  # the expired request never reached the model
    assert batcher.queued_rows == 0
    assert sum(len(b) for b, _ in published) == 1


def test_metrics_show_batches_sizes_and_queue(live, trained):
    rows = modelkit.json_rows(trained.frame.head(40))

    async def burst():
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            answers = await asyncio.gather(
                *[client.post("/predict", json={"features": r}) for r in rows]
            )
            return answers, (await client.get("/metrics")).text

    answers, metrics = asyncio.run(burst())
    assert all(a.status_code == 200 for a in answers)
    calls = sample(metrics, "mloop_batches_total", model_version="1")
    rows_seen = sample(metrics, "mloop_batch_size_rows_sum", model_version="1")
    assert calls >= 1 and rows_seen >= 1
    assert "mloop_batch_queue_rows" in metrics
    assert "mloop_batch_requests_bucket" in metrics
    assert "mloop_model_call_seconds_bucket" in metrics


def test_http_deadline_is_a_504_and_other_requests_still_answer(trained):
    app = create_app("churn@production", trained.settings, log_predictions=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        state = app.state.mloop
        model, gate = gated(state.runtime.model)
        state.runtime.model = model
        row = modelkit.json_rows(trained.frame.head(1))[0]

        async def scenario():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as aclient:
                slow = asyncio.ensure_future(aclient.post("/predict", json={"features": row}))
                await asyncio.to_thread(gate.entered.acquire)
                late = await aclient.post(
                    "/predict",
                    json={"features": row},
                    headers={"X-Request-Timeout-Ms": "50"},
                )
                gate.open.set()
                return await slow, late

        slow, late = asyncio.run(scenario())
        bad_header = client.post(
            "/predict", json={"features": row}, headers={"X-Request-Timeout-Ms": "soon"}
        )
        metrics = client.get("/metrics").text
    assert slow.status_code == 200
    assert late.status_code == 504
    assert late.json()["error"] == "DeadlineExceededError"
    assert "50 ms" in late.json()["detail"]
    assert bad_header.status_code == 422
    assert "X-Request-Timeout-Ms" in bad_header.json()["detail"]
    assert sample(metrics, "model_predictions_total", model_version="1", status="timeout") == 1.0


def test_a_body_over_the_limit_is_a_413(trained):
    settings = trained.settings.model_copy(update={"max_body_bytes": 2048})
    app = create_app("churn@production", settings, log_predictions=False)
    row = modelkit.json_rows(trained.frame.head(1))[0]
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        big = client.post("/predict/batch", json={"instances": [row] * 40})
        small = client.post("/predict", json={"features": row})
        invocations = client.post("/invocations", json={"dataframe_records": [row] * 40})
    assert big.status_code == 413 and "over the limit of 2048 bytes" in big.json()["detail"]
    assert small.status_code == 200
    assert invocations.status_code == 413
    assert invocations.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
