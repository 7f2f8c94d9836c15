"""mloop: the whole machine-learning loop, self-hosted, on standard parts."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Client", "MloopError", "Settings", "__version__", "get_settings"]


def __getattr__(name: str):
    # Imported lazily so `import mloop` stays cheap for the CLI and the server workers.
    if name == "Client":
        from mloop.client import Client

        return Client
    if name == "MloopError":
        from mloop.errors import MloopError

        return MloopError
    if name in ("Settings", "get_settings"):
        from mloop import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'mloop' has no attribute {name!r}")
