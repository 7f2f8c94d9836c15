"""`mloop serve MODEL_REF`: the model server on uvicorn."""

from __future__ import annotations

import os

import typer

from mloop.cli.console import console, err_console
from mloop.settings import get_settings


def serve(
    model_ref: str = typer.Argument(
        ..., help="Model to serve: NAME@ALIAS (churn@production), NAME/VERSION or models:/..."
    ),
    host: str | None = typer.Option(None, "--host", help="Bind address [MLOOP_HOST]."),
    port: int | None = typer.Option(None, "--port", min=0, max=65535, help="Port [MLOOP_PORT]."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Worker processes [MLOOP_WORKERS]."
    ),
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        help="uvicorn log level: debug, info, warning, error [MLOOP_LOG_LEVEL].",
    ),
) -> None:
    """Serve a registered model over HTTP (predict, batch, health, readiness, metrics).

    The server answers /health at once and loads the model in the background; /ready says when
    predictions can flow. MLOOP_FALLBACK_MODEL_URIS lists models to try when this one fails.

    Example: mloop serve churn@production --port 8000 --workers 2
    """
    import uvicorn

    from mloop.serving.app import MODEL_ENV, create_app
    from mloop.serving.loader import check_reference
    from mloop.store import open_database

    model_ref = check_reference(model_ref)  # a bad reference fails here, exit 2
    settings = get_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.workers
    level = (log_level or settings.log_level).lower()
    if level not in ("critical", "error", "warning", "info", "debug", "trace"):
        from mloop.errors import ConfigError

        raise ConfigError(
            f"unknown log level {level!r}", hint="use debug, info, warning, error or critical"
        )
    database = open_database(settings)  # migrate before any worker starts

    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    console.print(f"[bold]Serving[/] {model_ref} with {workers} worker(s)")
    console.print(f"  API docs   {url}/docs")
    console.print(f"  metrics    {url}/metrics")
    console.print(f"  readiness  {url}/ready")
    console.print(f"  predictions log to {database.safe_url}", highlight=False)
    if workers == 1:
        uvicorn.run(create_app(model_ref, settings), host=host, port=port, log_level=level)
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        err_console.print(
            "[yellow]note:[/] each worker keeps its own metrics; set PROMETHEUS_MULTIPROC_DIR "
            "to an empty folder to aggregate them",
            highlight=False,
        )
    os.environ[MODEL_ENV] = model_ref
    uvicorn.run(
        "mloop.serving.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=level,
    )
