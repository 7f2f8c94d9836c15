"""Models pages: registered models, one model's versions, one version, two versions compared.

Read through the server's governed registry (`ApprovalService.registry`, the only MLflow
client user); the data functions below take the registry and return plain dicts, so tests
call them directly. Lists are cut at `LIMIT` rows so pages stay fast.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import NotFoundError, ServiceUnavailableError, ValidationError
from mloop.governance.gates import CARD_TAG, OWNER_TAG, USE_TAG
from mloop.registry.run_plots import run_plots
from mloop.registry.service import Registry
from mloop.registry.signature import version_inputs
from mloop.serving.console.web import ConsoleUser, current_user, render, state
from mloop.settings import Settings

router = APIRouter()
_plots: dict[tuple[str, str], dict[str, bytes]] = {}
LIMIT = 20  # versions shown per model page
LINEAGE = {
    "mloop.git_commit": "code commit",
    "mloop.data_path": "training data",
    "mloop.data_sha256": "training data sha256",
    "mloop.data_rows": "training rows",
    "mloop.package_versions": "packages",
}


def registry(request: Request) -> Registry:
    approvals = state(request).approvals
    if approvals is None:
        raise ServiceUnavailableError("the server is starting: the registry is not ready yet")
    return approvals.registry


def model_rows(reg: Registry) -> list[dict[str, Any]]:
    """Every registered model: name, latest version, stage holders, description."""
    return [summary.to_dict() for summary in reg.list_models()]


def version_rows(reg: Registry, name: str, limit: int = LIMIT) -> list[dict[str, Any]]:
    """The newest `limit` versions of `name`, newest first (NotFoundError for no such model)."""
    summary = next((m for m in reg.list_models() if m.name == name), None)
    if summary is None:
        raise NotFoundError(f"registered model {name!r} not found")
    rows: list[dict[str, Any]] = []
    number = int(summary.latest_version or 0)
    while number > 0 and len(rows) < limit:
        with suppress(NotFoundError):  # a deleted version
            rows.append(reg.get_version(f"{name}/{number}").to_dict())
        number -= 1
    return rows


def version_view(settings: Settings, reg: Registry, name: str, version: str) -> dict[str, Any]:
    """One version: details, lineage, signature inputs, card facts and plot names."""
    details = reg.get_version(f"{name}/{check_version(version)}")
    view = details.to_dict()
    lineage = details.lineage
    view["lineage_rows"] = [
        (label, lineage[key]) for key, label in LINEAGE.items() if key in lineage
    ]
    view["lineage_rows"] += [
        (key, value) for key, value in sorted(lineage.items()) if key not in LINEAGE
    ]
    try:
        view["inputs"] = version_inputs(settings, details.uri)
    except Exception:  # a broken or unreadable MLmodel: the page still shows the rest
        view["inputs"] = []
    tags = details.tags
    view["card"] = (
        {"owner": tags.get(OWNER_TAG), "intended_use": tags.get(USE_TAG), "sha256": tags[CARD_TAG]}
        if tags.get(CARD_TAG)
        else None
    )
    view["plots"] = sorted(plots_of(settings, details.run_id)) if details.run_id else []
    return view


def compare_view(reg: Registry, name: str, a: str, b: str) -> dict[str, Any]:
    """Metrics and params of two versions side by side, with which differ, and a bar chart."""
    left = reg.get_version(f"{name}/{check_version(a)}")
    right = reg.get_version(f"{name}/{check_version(b)}")

    def rows(one: dict[str, Any], two: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "key": key,
                "a": one.get(key),
                "b": two.get(key),
                "differs": one.get(key) != two.get(key),
            }
            for key in sorted(set(one) | set(two))
        ]

    shared = sorted(set(left.metrics) & set(right.metrics))
    figure = {
        "data": [
            {
                "type": "bar",
                "name": f"v{v.version}",
                "x": shared,
                "y": [v.metrics[k] for k in shared],
            }
            for v in (left, right)
        ],
        "layout": {"barmode": "group", "title": {"text": "Shared metrics"}},
    }
    return {
        "a": left.to_dict(),
        "b": right.to_dict(),
        "metrics": rows(left.metrics, right.metrics),
        "params": rows(left.params, right.params),
        "figure": figure if shared else None,
    }


def check_version(value: str) -> str:
    """A version number as text; ValidationError (a 4xx page) for anything else."""
    text = str(value or "").strip()
    if not text.isdigit():
        raise ValidationError(f"version {value!r} is not a version number (1, 2, ...)")
    return str(int(text))


def plots_of(settings: Settings, run_id: str) -> dict[str, bytes]:
    """The run's `plots/*.png` (cached: a run's artifacts do not change once logged)."""
    key = (settings.tracking_uri, run_id)
    if key not in _plots:
        try:
            found = run_plots(settings, run_id)
        except Exception:  # no artifacts folder, or an unreadable store: no plots shown
            found = {}
        if len(_plots) > 64:
            _plots.clear()
        _plots[key] = found
    return _plots[key]


@router.get("/ui/models")
async def models_page(request: Request, user: ConsoleUser = Depends(current_user)) -> Response:
    rows = await run_in_threadpool(model_rows, registry(request))
    return render(request, "models.html", {"models": rows})


@router.get("/ui/models/{name}")
async def model_page(
    request: Request, name: str, user: ConsoleUser = Depends(current_user)
) -> Response:
    rows = await run_in_threadpool(version_rows, registry(request), name)
    return render(request, "models_detail.html", {"name": name, "versions": rows})


@router.get("/ui/models/{name}/compare")
async def compare_page(
    request: Request,
    name: str,
    a: str = "",
    b: str = "",
    user: ConsoleUser = Depends(current_user),
) -> Response:
    view = await run_in_threadpool(compare_view, registry(request), name, a, b)
    return render(request, "models_compare.html", {"name": name, **view})


@router.get("/ui/models/{name}/versions/{version}")
async def version_page(
    request: Request, name: str, version: str, user: ConsoleUser = Depends(current_user)
) -> Response:
    settings = state(request).settings
    view = await run_in_threadpool(version_view, settings, registry(request), name, version)
    return render(request, "models_version.html", {"v": view})


@router.get("/ui/models/{name}/versions/{version}/plots/{plot}.png")
async def plot_image(
    request: Request,
    name: str,
    version: str,
    plot: str,
    user: ConsoleUser = Depends(current_user),
) -> Response:
    """One of the version's run plots, as image/png."""
    details = await run_in_threadpool(
        registry(request).get_version, f"{name}/{check_version(version)}"
    )
    found = plots_of(state(request).settings, details.run_id) if details.run_id else {}
    if plot not in found:
        raise NotFoundError(f"{name}/{version} has no plot {plot!r}")
    return Response(
        found[plot], media_type="image/png", headers={"cache-control": "private, max-age=3600"}
    )
