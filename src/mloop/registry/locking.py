"""One stage writer at a time: promotions and rollbacks read, then move aliases, then record.

Two promotions interleaving could each archive the holder they saw and leave the history out of
step with the aliases. The simplest sound rule is a single writer: a thread lock inside the
process plus an exclusive `flock` on `MLOOP_HOME/registry.lock` across processes of the same
MLOOP_HOME. Several hosts sharing one remote registry must promote from one place (a CI job, the
mloop server); mloop does not coordinate writers on different machines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone (one process writes)
    fcntl = None  # type: ignore[assignment]

_thread_lock = threading.Lock()  # not re-entrant: flock would block a nested holder anyway


@contextmanager
def writer_lock(home: Path) -> Iterator[None]:
    """Hold the registry's stage-writer lock for the duration of the block."""
    with _thread_lock:
        if fcntl is None:
            yield
            return
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "registry.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
