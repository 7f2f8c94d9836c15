"""`mloop serve [MODEL_REF]`: the model server on uvicorn (no MODEL_REF: the default
deployment)."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from pathlib import Path

import typer

from mloop.cli.console import console
from mloop.errors import ConfigError
from mloop.logs import uvicorn_config
from mloop.settings import get_settings

# The environment variable naming the model the workers serve (read by mloop.platform's
# serve_worker_app through mloop.serving.app.MODEL_ENV; equal, tested).
MODEL_ENV = "MLOOP_SERVE_MODEL"

# The HTTP protocol of each worker, by import path: uvicorn imports it in the workers only.
WORKER_HTTP = "mloop.serving.worker_http:PROTOCOL"

# Seconds a worker may take to answer its supervisor's ping before uvicorn kills and replaces it.
WORKER_HEALTHCHECK_SECONDS = 60


def serve(
    model_ref: str | None = typer.Argument(
        None,
        help="Model to serve: NAME@ALIAS (churn@production), NAME/VERSION or models:/...; "
        "omitted: the default deployment (`default: true`) answers /predict.",
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
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="Log one line per HTTP request (off: the audit trail records API calls).",
    ),
    ssl_certfile: Path | None = typer.Option(
        None, "--ssl-certfile", help="PEM certificate: serve HTTPS [MLOOP_SSL_CERTFILE]."
    ),
    ssl_keyfile: Path | None = typer.Option(
        None, "--ssl-keyfile", help="PEM private key of the certificate [MLOOP_SSL_KEYFILE]."
    ),
) -> None:
    """Serve a registered model over HTTP (predict, batch, health, readiness, metrics).

    The server answers /health at once and loads the model in the background; /ready says when
    predictions can flow. MLOOP_FALLBACK_MODEL_URIS lists models to try when this one fails.
    Every deployment answers on /deployments/NAME/predict; without MODEL_REF, /predict follows
    the default deployment.

    Example: mloop serve churn@production --port 8000 --workers 2

    Example: mloop serve   (serves the default deployment)

    Example: mloop serve churn@production --ssl-certfile cert.pem --ssl-keyfile key.pem
    """
    # lazy: the server stack (uvicorn, FastAPI, MLflow) loads only when serving, not for
    # `mloop --help` or the other commands (about 1.5 s, python -X importtime)
    import uvicorn  # lazy: see above

    from mloop.cli.platform import command_platform  # lazy: see above
    from mloop.registry.resolve import check_reference  # lazy: see above
    from mloop.serving.server import tune_gc  # lazy: see above

    # With --workers N the serving stack (mloop.serving.app, .http) loads in each worker
    # only: this process migrates the database and starts them (benchmarks/startup.py).

    settings = get_settings()
    if model_ref is not None:
        model_ref = check_reference(model_ref)  # a bad reference fails here, exit 2
        serving = model_ref
    elif settings.fallback_model_uris:
        serving = "the fallback models (MLOOP_FALLBACK_MODEL_URIS)"
    else:
        from mloop.serving.app import default_deployment  # lazy: see above

        name, primary = default_deployment(settings)  # none: ConfigError, exit 2
        serving = f"deployment {name} (primary {primary})"
    host = host or settings.host
    if host != settings.host:  # MLOOP_AUTH=auto turns auth on by the address actually bound
        settings = settings.model_copy(update={"host": host})
        os.environ["MLOOP_HOST"] = host  # the same for worker processes
    port = settings.port if port is None else port
    workers = workers or settings.workers
    level = (log_level or settings.log_level).lower()
    if level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ConfigError(
            f"unknown log level {level!r}", hint="use debug, info, warning, error or critical"
        )
    tls = check_tls(ssl_certfile or settings.ssl_certfile, ssl_keyfile or settings.ssl_keyfile)
    platform = command_platform(settings)
    database = platform.database  # migrate before any worker starts

    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"{'https' if tls else 'http'}://{shown}:{port}"
    console.print(f"[bold]Serving[/] {serving} with {workers} worker(s)", highlight=False)
    console.print(f"  API docs   {url}/docs")
    console.print(f"  metrics    {url}/metrics")
    console.print(f"  readiness  {url}/ready")
    poll = settings.model_poll_seconds  # hot swaps: served aliases are followed
    every = f"checked every {poll:g}s" if poll > 0 else "polling off (MLOOP_MODEL_POLL_SECONDS)"
    console.print(f"  aliases    {every}; POST {url}/models/refresh swaps now", highlight=False)
    from mloop.security.mode import auth_enabled  # lazy: see above (not security.auth's stack)

    console.print(f"  auth       {'on' if auth_enabled(settings) else 'off'} (MLOOP_AUTH)")
    console.print(f"  predictions log to {database.safe_url}", highlight=False)
    tune_gc()  # a serving process (serving.server); each worker process tunes its own
    if workers == 1:
        from mloop.serving.http import HTTP_PROTOCOL  # lazy: see above

        uvicorn.run(
            platform.server_app(model_ref, freeze_heap=True),
            host=host,
            port=port,
            log_level=level,
            log_config=uvicorn_config(settings.log_format, level),
            access_log=access_log,
            http=HTTP_PROTOCOL,
            **tls,
        )
        return
    # Workers write metrics to files in one folder; /metrics sums them (counters, histograms)
    # whichever worker answers. A fresh folder per run unless the user chose one.
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="mloop-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    console.print(
        f"  metrics of {workers} workers aggregated in {os.environ['PROMETHEUS_MULTIPROC_DIR']}",
        highlight=False,
    )
    if model_ref is not None:
        os.environ[MODEL_ENV] = model_ref
    else:
        os.environ.pop(MODEL_ENV, None)  # workers serve the default deployment
    try:
        uvicorn.run(
            "mloop.platform:serve_worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # uvicorn restarts a worker that misses a 5 s ping; a worker still importing on a
            # busy machine misses it too, and would be killed and restarted in a loop
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            log_level=level,
            log_config=uvicorn_config(settings.log_format, level),
            access_log=access_log,
            http=WORKER_HTTP,  # imported by each worker, not here
            **tls,
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def check_tls(certfile: Path | None, keyfile: Path | None) -> dict[str, str]:
    """uvicorn's TLS arguments ({} for plain HTTP); ConfigError for a missing or unusable pair."""
    if certfile is None and keyfile is None:
        return {}
    if certfile is None or keyfile is None:
        raise ConfigError(
            "TLS needs both a certificate and its key",
            hint="pass --ssl-certfile and --ssl-keyfile (MLOOP_SSL_CERTFILE, MLOOP_SSL_KEYFILE)",
        )
    for what, path in (("certificate", certfile), ("key", keyfile)):
        if not path.is_file():
            raise ConfigError(f"TLS {what} file {str(path)!r} does not exist")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")  # never prompts
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"cannot use TLS certificate {str(certfile)!r} with key {str(keyfile)!r}: {exc}",
            hint="both must be PEM files, and the key must belong to the certificate",
        ) from exc
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
