"""mloop: the whole machine-learning loop, self-hosted, on standard parts."""

from __future__ import annotations

from mloop.errors import MloopError

__version__ = "0.1.0"

__all__ = ["Client", "MloopError", "Settings", "__version__", "get_settings"]


def __getattr__(name: str):
    # Lazy so that `import mloop` (the CLI, the server workers) does not pay for the facade.
    if name == "Client":
        from mloop.client import Client  # lazy: +40 ms (httpx) on every `import mloop`

        return Client
    if name in ("Settings", "get_settings"):
        from mloop import settings  # lazy: +0.2 s (pydantic-settings) on every `import mloop`

        return getattr(settings, name)
    raise AttributeError(f"module 'mloop' has no attribute {name!r}")
