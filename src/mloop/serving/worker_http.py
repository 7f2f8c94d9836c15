"""The HTTP protocol of `mloop serve --workers N`, named by import path (cli.serve WORKER_HTTP).

uvicorn imports a protocol given as "module:name" in each worker only, so the supervisor
process, which binds the socket and starts the workers, does not import the serving stack
that `mloop.serving.http` checks at import (`serving.internals`: FastAPI, scikit-learn).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from mloop.serving.http import HTTP_PROTOCOL

PROTOCOL: Any = AutoHTTPProtocol if HTTP_PROTOCOL == "auto" else HTTP_PROTOCOL
