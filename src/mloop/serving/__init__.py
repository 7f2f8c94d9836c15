"""The model server: FastAPI app factory, model runtime, input schema, in-thread server.

Names are imported lazily so `import mloop.model.schema` does not pull in FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InputSchema", "ModelRuntime", "ServerThread", "create_app", "create_app_from_env"]

_WHERE = {
    "InputSchema": "mloop.model.schema",
    "ModelRuntime": "mloop.serving.runtime",
    "ServerThread": "mloop.serving.server",
    "create_app": "mloop.serving.app",
    "create_app_from_env": "mloop.serving.app",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib  # lazy: this facade stays free of imports until a name is used

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mloop.serving' has no attribute {name!r}")
