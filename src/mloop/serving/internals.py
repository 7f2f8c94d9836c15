"""Every serving trick that leans on a third-party private internal, checked at start-up.

Each trick is an optimisation with a standard fallback. `probe()` runs once when this module
is imported (server start-up) and checks that each internal is still what the trick expects;
one that is not is switched off (the standard path is taken) and the reason is logged.
pyproject.toml bounds the versions of the packages involved (starlette, fastapi, uvicorn,
scikit-learn) to those released and tested.

- `starlette.requests.Request._body`: where `Request.body()` caches the body. The serving
  path reads the ASGI messages itself (serving.body) and leaves the body there, so a later
  `request.body()` (middleware, the audit digest) finds it. Fallback: `scope["mloop.body"]`.
- uvicorn's `HttpToolsProtocol.on_headers_complete` creating `self.cycle` with a `transport`:
  serving.http's one-write protocol wraps that transport. Fallback: uvicorn's "auto" protocol.
- FastAPI's route table: `iter_route_contexts` where included routers are wrapped (FastAPI
  >= 0.120), the flat `app.routes` before (`app_routes`).
- scikit-learn's `sklearn.tree._tree.Tree` (state layout of `__getstate__`): the joined forest
  of mloop.model.native. That module sits below serving, so it keeps its own check (a joined
  forest is used only when bit-identical to scikit-learn's answers on sample rows, otherwise
  tree by tree); `probe()` reports whether the class is there.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

try:  # FastAPI >= 0.120 wraps included routers (walked with their prefixes by this)
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: included routes are flat on app.routes
    iter_route_contexts = None

log = logging.getLogger("mloop.serving")

BODY_KEY = "mloop.body"  # the fallback's scope key


@dataclass(frozen=True)
class Internals:
    """Which private internals are usable in this process (False: the standard path)."""

    request_body_cache: bool = True
    httptools_cycle: bool = True
    sklearn_tree: bool = True
    problems: dict[str, str] = field(default_factory=dict)  # internal -> why it is off


def _check_request_body(request_cls: type) -> str | None:
    body = getattr(request_cls, "body", None)
    try:
        source = inspect.getsource(body) if body is not None else ""
    except (OSError, TypeError):
        return "cannot read Request.body's source"
    if "self._body" not in source:
        return "Request.body() no longer caches the body in `_body`"
    return None


def _check_httptools(protocol_cls: Any) -> str | None:
    if protocol_cls is None:
        return "uvicorn's httptools protocol is not installed"
    hook = getattr(protocol_cls, "on_headers_complete", None)
    try:
        source = inspect.getsource(hook) if hook is not None else ""
    except (OSError, TypeError):
        return "cannot read HttpToolsProtocol.on_headers_complete's source"
    if "self.cycle = " not in source or "transport=" not in source:
        return "HttpToolsProtocol.on_headers_complete no longer builds `self.cycle(transport=)`"
    return None


def _check_sklearn_tree() -> str | None:
    try:
        from sklearn.tree._tree import TREE_LEAF, Tree  # noqa: F401
    except ImportError as exc:
        return f"sklearn.tree._tree: {exc}"
    if not hasattr(Tree, "__getstate__") or not hasattr(Tree, "__setstate__"):
        return "sklearn's Tree has no __getstate__/__setstate__"
    return None


def _httptools_protocol() -> Any:
    try:
        # lazy: whether this private module still exists is what the probe checks
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None
    return HttpToolsProtocol


def probe(
    request_cls: type = Request, protocol_cls: Any = ..., *, quiet: bool = False
) -> Internals:
    """Check each internal (arguments: the classes to check, for tests); log each one off."""
    protocol = _httptools_protocol() if protocol_cls is ... else protocol_cls
    found = {
        "starlette Request._body": _check_request_body(request_cls),
        "uvicorn HttpToolsProtocol.cycle": _check_httptools(protocol),
        "scikit-learn Tree": _check_sklearn_tree(),
    }
    problems = {name: why for name, why in found.items() if why is not None}
    if not quiet:
        for name, why in problems.items():
            log.warning("%s: %s; using the standard path", name, why)
    return Internals(
        request_body_cache="starlette Request._body" not in problems,
        httptools_cycle="uvicorn HttpToolsProtocol.cycle" not in problems,
        sklearn_tree="scikit-learn Tree" not in problems,
        problems=problems,
    )


# Checked once at start-up (import); an immutable result, read per request.
AVAILABLE = probe()


def remember_body(request: Request, body: bytes) -> None:
    """Leave the body read from the ASGI messages where later readers find it."""
    if AVAILABLE.request_body_cache:
        request._body = body  # what Request.body() returns from then on
    else:
        request.scope[BODY_KEY] = body


def cached_body(request: Request) -> bytes | None:
    """The body already read (by `remember_body` or `request.body()`), or None."""
    if AVAILABLE.request_body_cache:
        return getattr(request, "_body", None)
    return request.scope.get(BODY_KEY)


def app_routes(app: Any) -> list[tuple[str, Any]]:
    """(full path, route) of every route of a FastAPI `app`, included routers too."""
    if iter_route_contexts is None:
        return [(getattr(route, "path", ""), route) for route in app.routes]
    return [(ctx.path, ctx.route) for ctx in iter_route_contexts(app.routes)]
