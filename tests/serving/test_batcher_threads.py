"""The batcher's model threads: early calls when a busy model's queue fills, closing answers
what is queued, and time-ordered prediction ids."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from mloop.registry.resolve import load_model
from mloop.serving.batcher import ModelCallError, new_ids
from tests.serving.test_batching import gated, make_batcher
from tests.support import modelkit


@pytest.fixture(scope="module")
def churn(trained):
    return load_model("churn/1", trained.settings)


def test_a_full_queue_leaves_early_as_an_extra_call_while_the_model_is_busy(churn, trained):
    model, gate = gated(churn)
    rows = modelkit.json_rows(trained.frame.head(5))

    async def scenario():
        batcher = make_batcher(model, [], max_batch_size=2)  # max_wait 60 s: only "full" helps
        first = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[:1]), rows[:1]))
        await asyncio.to_thread(gate.entered.acquire)  # the model thread is busy
        rest = [
            asyncio.ensure_future(batcher.submit(model.schema.validate([r]), [r])) for r in rows[1:]
        ]
        # two full batches leave (EXTRA_CALLS) while the first call holds the model thread
        assert await asyncio.to_thread(gate.entered.acquire, True, 10)
        assert await asyncio.to_thread(gate.entered.acquire, True, 10)
        assert not first.done() and gate.calls == [1, 2, 2]
        assert batcher.queued_rows == 0
        gate.open.set()
        answers = await asyncio.gather(first, *rest)
        batcher.close()
        return answers

    answers = asyncio.run(scenario())
    assert gate.calls == [1, 2, 2]
    assert len({a.ids[0] for a in answers}) == 5


def test_closing_fails_queued_requests_instead_of_leaving_them_waiting(churn, trained):
    model, gate = gated(churn)
    rows = modelkit.json_rows(trained.frame.head(2))

    async def scenario():
        batcher = make_batcher(model, [])
        first = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[:1]), rows[:1]))
        await asyncio.to_thread(gate.entered.acquire)
        queued = asyncio.ensure_future(batcher.submit(model.schema.validate(rows[1:]), rows[1:]))
        await asyncio.sleep(0.05)
        batcher.close()
        gate.open.set()
        with pytest.raises(ModelCallError, match="unloaded"):
            await queued
        answer = await first  # the call in progress still answers
        assert batcher.closed and batcher.idle
        with pytest.raises(ModelCallError):
            await batcher.submit(model.schema.validate(rows[:1]), rows[:1])
        return answer

    assert len(asyncio.run(scenario()).ids) == 1


def test_prediction_ids_are_unique_time_ordered_version_7_uuids():
    earlier = new_ids(1)[0]
    time.sleep(0.002)
    ids = new_ids(500)
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert all(earlier < text for text in ids)  # the millisecond prefix sorts as text
    stamp = uuid.UUID(ids[0]).int >> 80
    assert abs(stamp - time.time() * 1000) < 60_000
