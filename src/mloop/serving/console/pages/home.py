"""Where the console starts: `/` and `/ui/` lead to the Models page."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import RedirectResponse

router = APIRouter()


@router.get("/")
async def root() -> RedirectResponse:
    """The server's root opens the console."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
@router.get("/ui/")
async def console_home() -> RedirectResponse:
    return RedirectResponse("/ui/models", status_code=307)
