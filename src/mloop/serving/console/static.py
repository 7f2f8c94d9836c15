"""The console's static files: its CSS and JS, and Plotly's JS from the installed package.

Plotly ships `plotly.min.js` inside the `plotly` wheel (`plotly/package_data`), so the console
needs nothing from a CDN. Files are read once and served with cache headers (versioned URLs).
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from mloop.errors import NotFoundError

router = APIRouter()
HERE = Path(__file__).parent / "static"
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
LONG = "public, max-age=31536000, immutable"


@cache
def _read(name: str) -> bytes | None:
    if name == "plotly.min.js":
        return (importlib.resources.files("plotly") / "package_data" / name).read_bytes()
    path = HERE / name
    return path.read_bytes() if name in {"console.css", "console.js"} and path.is_file() else None


@router.get("/ui/static/{name}")
async def static_file(name: str) -> Response:
    """One static file; URLs carry `?v=<version>`, so browsers may cache them for long."""
    body = _read(name)
    if body is None:
        raise NotFoundError(f"no static file {name!r}")
    cache_control = LONG if name == "plotly.min.js" else "public, max-age=3600"
    headers = {"cache-control": cache_control}
    return Response(body, media_type=TYPES[Path(name).suffix], headers=headers)
