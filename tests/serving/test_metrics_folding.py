"""Serving metrics folded per event-loop iteration and histograms observed per batch: the
exposition is the one observing every value one by one would give."""

from __future__ import annotations

import asyncio
import math

import httpx
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from mloop.serving.metrics import LATENCY_BUCKETS, ServingMetrics, observe_many
from tests.support import modelkit
from tests.support.modelkit import sample

# On the bounds, between them, below the first, past the last, infinite, zero, negative, NaN.
VALUES = [
    *LATENCY_BUCKETS,
    *(b * 0.999 for b in LATENCY_BUCKETS),
    *(b * 1.001 for b in LATENCY_BUCKETS),
    0.0,
    -1.0,
    1e-9,
    42.0,
    math.inf,
    float("nan"),
]


def _histogram(name: str) -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    histogram = Histogram(name, "h", ["v"], buckets=LATENCY_BUCKETS, registry=registry)
    return registry, histogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    out = {}
    for metric in registry.collect():
        for s in metric.samples:
            if not s.name.endswith("_created"):
                out[(s.name, s.labels.get("le", ""))] = s.value
    return out


def test_observe_many_gives_the_buckets_count_and_sum_of_one_by_one():
    one_registry, one = _histogram("h")
    many_registry, many = _histogram("h")
    finite = [v for v in VALUES if v == v]
    for value in finite:
        one.labels(v="a").observe(value)
    observe_many(many.labels(v="a"), finite)
    assert _samples(many_registry) == _samples(one_registry)


def test_observe_many_puts_nan_in_no_bucket_but_in_the_count_and_sum_like_observe():
    one_registry, one = _histogram("h")
    many_registry, many = _histogram("h")
    one.labels(v="a").observe(float("nan"))
    one.labels(v="a").observe(0.003)
    observe_many(many.labels(v="a"), [float("nan"), 0.003])
    got, expected = _samples(many_registry), _samples(one_registry)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), key


def test_counts_and_observations_on_the_loop_are_written_once_per_iteration():
    metrics = ServingMetrics()

    def exposed() -> bytes:  # what a scrape from another thread would read: nothing flushed
        return generate_latest(metrics.registry)

    async def scenario() -> tuple[float, float, bytes]:
        for i in range(30):
            metrics.count("1", "success", 2)
            metrics.observe("1", 0.001 * i, [0.55, 0.97])
        before = sample(exposed().decode(), "model_predictions_total", model_version="1")
        await asyncio.sleep(0)  # the iteration ends: the flush it scheduled runs
        after = sample(exposed().decode(), "model_predictions_total", model_version="1")
        return before, after, exposed()

    before, after, body = asyncio.run(scenario())
    assert (before, after) == (0.0, 60.0)
    text = body.decode()
    assert sample(text, "model_prediction_latency_seconds_count", model_version="1") == 30
    assert sample(text, "model_prediction_confidence_count", model_version="1") == 60
    assert sample(text, "model_prediction_confidence_bucket", model_version="1", le="0.6") == 30

    direct = ServingMetrics()  # off the loop: written at once
    direct.count("1", "success", 2)
    assert sample(generate_latest(direct.registry).decode(), "model_predictions_total") == 2


def test_render_on_the_loop_includes_what_this_iteration_folded():
    metrics = ServingMetrics()

    async def scenario() -> str:
        metrics.count("1", "invalid", 3)
        return metrics.render().decode()

    assert sample(asyncio.run(scenario()), "model_predictions_total", status="invalid") == 3


def test_a_burst_of_requests_is_counted_and_observed_once_each(live, trained):
    rows = modelkit.json_rows(trained.frame.head(48))

    async def burst() -> tuple[list[httpx.Response], str, str]:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            before = (await client.get("/metrics")).text
            answers = await asyncio.gather(
                *[client.post("/predict", json={"features": r}) for r in rows]
            )
            return answers, before, (await client.get("/metrics")).text

    answers, before, after = asyncio.run(burst())
    assert all(a.status_code == 200 for a in answers)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("model_predictions_total", model_version="1", status="success") == 48
    assert grew("model_prediction_latency_seconds_count", model_version="1") == 48
    assert grew("model_prediction_latency_seconds_bucket", model_version="1", le="+Inf") == 48
    assert grew("model_prediction_confidence_count", model_version="1") == 48
    assert grew("mloop_batch_queue_wait_seconds_count", model_version="1") == 48
    assert grew("mloop_batch_queue_wait_seconds_bucket", model_version="1", le="+Inf") == 48
