"""Audit a model version refused because its files differ from the digest recorded at
registration (`registry.integrity`): `model.integrity_refused` in the audit chain.

The registry raises and records nothing (it sits below governance); the loaders that serve or
score (serving's runtimes, batch scoring) pass an `IntegrityAudit` down as `on_refused`.
"""

from __future__ import annotations

import logging
import threading

from mloop.errors import ModelIntegrityError
from mloop.governance.audit import audit_log
from mloop.settings import Settings

log = logging.getLogger("mloop.governance")

ACTION = "model.integrity_refused"


class IntegrityAudit:
    """A `RefusalHook`: one audit event per refused (version, found digest) in this process.

    A server retries a refused version on every poll; one event says it, the log repeats it.
    """

    def __init__(self, settings: Settings, actor: str = "mloop-server") -> None:
        self.settings = settings
        self.actor = actor
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, exc: ModelIntegrityError) -> None:
        key = (exc.name, exc.version, exc.found)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        try:
            audit_log(self.settings).record(
                self.actor,
                ACTION,
                f"{exc.name}/{exc.version}",
                expected_sha256=exc.expected,
                found_sha256=exc.found,
            )
        except Exception:  # the refusal stands; a broken audit store must not hide it
            log.exception("cannot audit the integrity refusal of %s/%s", exc.name, exc.version)
