"""One daemon thread draining a bounded queue in batches: the pattern behind the prediction log,
the audit writer, live drift, alert notifications and retraining.

Why one base: a background thread that wakes once per queued item takes the GIL from the
event loop once per request. Here producers only append to a deque (no lock, no wake-up while
the thread is busy or lingering); the thread wakes once when work arrives, then lingers
`linger` seconds so a burst is handled in one call (`batch` items at most per call), unless
the queue reaches `batch` items first. `linger=0` hands each item over at once (low-volume
queues: notifications, retraining).

Guarantees: `put` never blocks (False when the queue holds `max_items` or is closed: the caller
counts the loss); everything accepted is handed to `handle` in order, also at `close()`;
`flush()` returns once everything put before it was handled. A failing `handle` is logged and
the thread goes on. `tick` (optional) runs every `tick_seconds` even without traffic.

`keep_trying` is how a writer's `handle` survives its database going away: it retries with
backoff (recording the `Outage` that `/ready` reports) while the queue keeps accepting items.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("mloop.background")

T = TypeVar("T")


class _Marker:
    """A flush or stop request travelling in the queue behind the items it waits for."""

    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class BackgroundQueue(Generic[T]):
    """A bounded queue of items handed to `handle(list_of_items)` by one daemon thread."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        max_items: int = 10_000,
        batch: int = 500,
        linger: float = 0.2,
        tick: Callable[[], None] | None = None,
        tick_seconds: float = 0.0,
        start: bool = True,
    ) -> None:
        self.name = name
        self.max_items = max_items
        self.batch = max(batch, 1)
        self.linger = linger
        self._handle = handle
        self._tick = tick
        self._tick_seconds = tick_seconds
        self._items: deque[Any] = deque()
        self._wake = threading.Event()  # set while the thread is awake (or about to be)
        self._urgent = threading.Event()  # cut the linger short: a full batch, flush, close
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        if start:
            self.start()

    # -- producers ---------------------------------------------------------------------------

    def put(self, item: T) -> bool:
        """Queue one item without blocking; False when the queue is full or closed."""
        items = self._items
        if self._closed or len(items) >= self.max_items:
            return False
        items.append(item)
        if not self._wake.is_set():
            self._wake.set()
        if self.linger <= 0 or len(items) >= self.batch:
            self._urgent.set()
        return True

    def __len__(self) -> int:
        """Items queued and not yet taken by the thread."""
        return sum(1 for item in list(self._items) if not isinstance(item, _Marker))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- control -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every item put before this call was handled; False on timeout."""
        if not self.running:
            return not self._items
        marker = _Marker()
        self._send(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Refuse new items, hand over everything queued, stop the thread (idempotent).

        False when the thread did not finish within `timeout`.
        """
        if self._closed:
            thread = self._thread
            return thread is None or not thread.is_alive()
        self._closed = True
        if self._thread is None:
            return True
        marker = _Marker(stop=True)
        self._send(marker)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _send(self, marker: _Marker) -> None:
        self._items.append(marker)
        self._wake.set()
        self._urgent.set()

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        items = self._items
        ticking = self._tick is not None and self._tick_seconds > 0
        next_tick = time.monotonic() + self._tick_seconds if ticking else None
        while True:
            if not items:
                self._wake.clear()
                if not items:  # a put between the check and the clear set it again
                    timeout = None if next_tick is None else max(next_tick - time.monotonic(), 0)
                    self._wake.wait(timeout)
            if items and self.linger > 0 and not self._urgent.is_set():
                self._urgent.wait(self.linger)  # let a burst gather: one call for many items
            self._urgent.clear()
            if self._drain():
                return
            if next_tick is not None and time.monotonic() >= next_tick:
                self._call(self._tick, None)
                next_tick = time.monotonic() + self._tick_seconds

    def _drain(self) -> bool:
        """Hand over everything queued now, `batch` items per call; True after a stop marker."""
        items = self._items
        pending: list[T] = []
        markers: list[_Marker] = []
        stop = False
        while items:
            item = items.popleft()
            if isinstance(item, _Marker):
                markers.append(item)
                stop = stop or item.stop
                if pending:
                    self._call(self._handle, pending)
                    pending = []
                if not stop:
                    item.done.set()
                continue
            pending.append(item)
            if len(pending) >= self.batch:
                self._call(self._handle, pending)
                pending = []
        if pending:
            self._call(self._handle, pending)
        for marker in markers:
            marker.done.set()
        return stop

    def _call(self, function: Callable[..., None] | None, items: list[T] | None) -> None:
        if function is None:
            return
        try:
            function(items) if items is not None else function()
        except Exception:  # a background thread must never die of one bad batch
            log.exception("%s: background work failed", self.name)


class Outage:
    """Whether the target of a background writer (a database) is failing now, and since when.

    The writer thread sets it; `/ready` and metrics read it (a torn read is harmless).
    """

    __slots__ = ("error", "on_failure", "retries", "since")

    def __init__(self, on_failure: Callable[[], None] | None = None) -> None:
        self.since: float | None = None  # time.time() of the first failure of this outage
        self.error: str | None = None
        self.retries = 0
        self.on_failure = on_failure  # called on each failed attempt (a metric)

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, what: str, transient: bool) -> bool:
        """Record a failed attempt at `what`; True when it is worth retrying (`transient`)."""
        if self.on_failure is not None:
            self.on_failure()
        if not transient:
            log.error("%s failed: %s", what, _first_line(exc), exc_info=exc)
            return False
        self.error, self.retries = _first_line(exc), self.retries + 1
        if self.since is None:  # set last: a reader seeing `active` sees the error too
            self.since = time.time()
            log.warning("%s failed, retrying until it succeeds: %s", what, _first_line(exc))
        return True

    def recovered(self, what: str) -> None:
        """Record a success: the outage, if there was one, is over."""
        if self.since is not None:
            log.warning("%s succeeded again after %d retries", what, self.retries)
            self.since, self.error, self.retries = None, None, 0

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "error": self.error, "retries": self.retries}


def keep_trying(
    work: Callable[[], None],
    *,
    what: str,
    outage: Outage,
    give_up_after: float,
    transient: Callable[[BaseException], bool] = lambda exc: True,
    pause: float = 0.2,
    max_pause: float = 5.0,
) -> bool:
    """Call `work` until it succeeds (True), pausing `pause` doubling to `max_pause` between
    attempts; False once it has failed for `give_up_after` seconds, or at once for an error
    `transient` calls permanent (retrying a primary key clash cannot help). For writers whose
    rows were acknowledged already: a database outage delays them instead of losing them.
    """
    started = time.monotonic()
    while True:
        try:
            work()
        except Exception as exc:
            if not outage.failed(exc, what, transient(exc)):
                return False
            if time.monotonic() - started >= give_up_after:
                log.error("%s failed for %.0f s: giving up", what, give_up_after, exc_info=exc)
                return False
            time.sleep(pause)
            pause = min(pause * 2, max_pause)
            continue
        outage.recovered(what)
        return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
