"""BackgroundQueue: batches in order, flush and close drain, a full queue refuses, no wake-up
per item while lingering."""

from __future__ import annotations

import threading

from mloop.background import BackgroundQueue, Outage, keep_trying


class Recorder:
    """A handler that records each call's items, optionally holding the thread at a gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.calls.append(list(items))


def test_items_arrive_in_order_in_calls_of_at_most_batch():
    handler = Recorder()
    queue = BackgroundQueue("test", handler, batch=4, linger=60.0)
    for i in range(10):
        assert queue.put(i)
    queue.close()
    assert [i for call in handler.calls for i in call] == list(range(10))
    assert all(len(call) <= 4 for call in handler.calls)


def test_a_lingering_burst_is_handled_in_one_call_and_flush_cuts_the_linger_short():
    handler = Recorder()
    queue = BackgroundQueue("test", handler, batch=100, linger=60.0)
    for i in range(5):
        queue.put(i)
    assert queue.flush(timeout=30)  # well before the 60 s linger
    assert handler.calls == [[0, 1, 2, 3, 4]]
    queue.put(5)
    assert queue.flush(timeout=30)
    assert handler.calls[-1] == [5]
    queue.close()


def test_a_full_queue_refuses_without_blocking_and_close_drains_what_was_accepted():
    gate = threading.Event()
    handler = Recorder(gate)
    queue = BackgroundQueue("test", handler, max_items=3, batch=1, linger=0)
    queue.put(0)
    assert handler.entered.wait(30)  # the thread holds item 0 at the gate
    accepted = [queue.put(i) for i in range(1, 7)]
    assert accepted == [True, True, True, False, False, False]
    assert len(queue) == 3
    gate.set()
    assert queue.close(timeout=30)
    assert [i for call in handler.calls for i in call] == [0, 1, 2, 3]
    assert queue.put(9) is False  # closed
    assert queue.close() is True  # idempotent


def test_a_failing_handler_is_logged_and_the_thread_goes_on(caplog):
    seen: list[int] = []

    def handle(items: list[int]) -> None:
        if 0 in items:
            raise RuntimeError("boom")
        seen.extend(items)

    queue = BackgroundQueue("test-failing", handle, batch=1, linger=0)
    queue.put(0)
    queue.put(1)
    queue.close()
    assert seen == [1]
    assert "test-failing: background work failed" in caplog.text


def test_tick_runs_without_traffic_and_items_wait_for_start():
    ticked = threading.Event()
    handler = Recorder()
    queue = BackgroundQueue(
        "test", handler, linger=0, tick=ticked.set, tick_seconds=0.01, start=False
    )
    assert queue.put(1)  # accepted before the thread starts
    assert queue.flush(timeout=1) is False  # nobody to hand it to yet
    queue.start()
    assert ticked.wait(30)
    assert queue.flush(timeout=30)
    assert handler.calls == [[1]]
    queue.close()


def test_keep_trying_retries_a_transient_failure_and_reports_the_outage_meanwhile():
    outage, attempts, seen = Outage(), [], []

    def work() -> None:
        attempts.append(1)
        seen.append(outage.active)
        if len(attempts) < 3:
            raise ConnectionError("database away")

    assert keep_trying(work, what="w", outage=outage, give_up_after=60, pause=0.001)
    assert len(attempts) == 3 and seen == [False, True, True]  # degraded while failing
    assert not outage.active and outage.retries == 0  # cleared by the success


def test_keep_trying_gives_up_at_once_on_a_permanent_error_and_after_its_budget():
    calls = []

    def clash() -> None:
        calls.append(1)
        raise ValueError("duplicate key")

    outage = Outage()
    permanent = keep_trying(
        clash, what="w", outage=outage, give_up_after=60, transient=lambda e: False
    )
    assert not permanent and len(calls) == 1 and not outage.active
    calls.clear()
    assert not keep_trying(clash, what="w", outage=outage, give_up_after=0, pause=0.001)
    assert len(calls) == 1 and outage.active and "duplicate key" in outage.error
