"""Models that workers load once and reuse, keyed by their pinned URI (`models:/churn/3`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from mloop.governance.integrity import IntegrityAudit
from mloop.model.loader import LoadedModel
from mloop.registry.resolve import load_model
from mloop.settings import Settings


class ModelCache:
    """The last `size` models used; a server's own loaded model is reused, not loaded again."""

    def __init__(
        self,
        settings: Settings,
        *,
        size: int = 2,
        served: Callable[[], LoadedModel | None] | None = None,
    ) -> None:
        self.settings = settings
        self.size = size
        self._served = served
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._refused = IntegrityAudit(settings, "worker")  # tampered versions are audited

    def get(self, uri: str) -> LoadedModel:
        """The model at `uri`; MloopError (NotFoundError, ...) when it cannot be loaded."""
        served = self._served() if self._served is not None else None
        if served is not None and uri in (served.uri, served.source):
            return served
        with self._lock:
            if uri in self._models:
                self._models.move_to_end(uri)
                return self._models[uri]
            model = load_model(uri, self.settings, on_refused=self._refused)
            self._models[uri] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model
