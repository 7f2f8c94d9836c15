"""`mloop demo`: the whole loop on embedded defaults, from data to a live server with traffic."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from mloop.cli.console import console, step_progress
from mloop.errors import CriteriaNotMetError
from mloop.registry.stages import Stage
from mloop.settings import get_settings

if TYPE_CHECKING:  # mloop.demo imports pandas: loaded only when the demo runs
    from mloop.demo import TrafficReport

STEPS = ["generate data", "train", "promote to Production", "start server", "send traffic"]


def demo(
    rows: int = typer.Option(5000, min=500, help="Rows of synthetic churn data to train on."),
    name: str = typer.Option("churn", help="Registered model name."),
    host: str | None = typer.Option(None, help="Address to bind; default MLOOP_HOST."),
    port: int | None = typer.Option(None, help="Port; default MLOOP_PORT (a free one if busy)."),
    requests: int = typer.Option(300, min=10, help="Predictions to send after start-up."),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Keep the server running until Ctrl-C."
    ),
) -> None:
    """Run the whole loop: data -> train -> register -> promote -> serve -> predict.

    Everything lives under MLOOP_HOME (./.mloop): MLflow's sqlite store, artifacts, mloop's
    database. At the end the server keeps running with its URLs printed, until Ctrl-C.

    Example: mloop demo --rows 5000 --port 8000
    """
    from mloop.data.churn import generate_churn  # lazy: +0.4 s at CLI start-up
    from mloop.data.io import write_table  # lazy: +0.3 s at CLI start-up
    from mloop.demo import send_demo_traffic  # lazy: +0.4 s at CLI start-up
    from mloop.governance.governed import governed_registry  # lazy: +0.5 s at CLI start-up
    from mloop.pipeline.train import train  # lazy: +2.2 s at CLI start-up
    from mloop.serving.app import create_app  # lazy: +2.7 s at CLI start-up
    from mloop.serving.server import ServerThread  # lazy: +2.2 s at CLI start-up

    settings = get_settings()
    settings.ensure_home()
    registry = governed_registry(settings)
    host = host or settings.host
    port = _free_port(host, settings.port if port is None else port)

    with step_progress() as progress:
        task = progress.add_task("mloop demo", total=len(STEPS))

        def step(label: str) -> None:
            progress.update(task, description=label)

        step("generate data")
        data_path = settings.home / "demo" / "churn.csv"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        write_table(generate_churn(rows, seed=42), data_path)
        progress.advance(task)

        step("train")
        result = train(
            data_path,
            name=name,
            settings=settings,
            on_step=lambda s: step(f"train: {s}"),
            registry=registry,
        )
        if not result.registered:
            raise CriteriaNotMetError("the demo model did not pass its registration criteria")
        progress.advance(task)

        step("promote to Production")
        registry.promote(name, result.version, Stage.PRODUCTION, reason="mloop demo")
        progress.advance(task)

        step("start server")
        server = ServerThread(create_app(f"{name}@production", settings), host=host, port=port)
        server.start()
        progress.advance(task)

        step("send traffic")
        report = send_demo_traffic(server.url, data_path, requests=requests)
        progress.advance(task)

    if not serve:
        server.stop()
    _print_summary(result, report, server.url if serve else None, settings.tracking_uri, data_path)
    if not serve:
        return
    console.print("\n[bold]Serving until Ctrl-C.[/]")
    try:
        while server.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        server.stop()


def _free_port(host: str, wanted: int) -> int:
    """`wanted` if it is free on `host`, else any free port (the summary prints the real URL)."""
    for candidate in (wanted, 0):
        with socket.socket() as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free port on {host}")


def _print_summary(
    result, report: TrafficReport, url: str | None, tracking_uri: str, data: Path
) -> None:
    """What the demo did; the server's URLs only while it runs (`url` None: it stopped)."""
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.metrics.items()))
    console.print(f"\n[bold green]Model {result.model_name}/{result.version} is in Production.[/]")
    console.print(f"  data      {data}")
    console.print(f"  metrics   {metrics}")
    console.print(f"  run       {result.run_id}")

    table = Table(title="Traffic sent to the live server")
    table.add_column("kind")
    table.add_column("requests", justify="right")
    table.add_column("answer")
    for kind, count, answer in report.rows():
        table.add_row(kind, str(count), answer)
    console.print(table)
    console.print(
        f"  predictions ok {report.ok_predictions}, "
        f"latency p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms (client side)"
    )

    console.print("\n[bold]Open:[/]")
    if url is None:
        console.print(f"  MLflow UI  mlflow ui --backend-store-uri {tracking_uri}")
        console.print(
            f"  serve it   mloop serve {result.model_name}@production  (the demo server stopped: "
            "--no-serve)",
            highlight=False,
        )
        return
    console.print(f"  console    {url}/ui/")
    console.print(f"  API docs   {url}/docs")
    console.print(f"  metrics    {url}/metrics")
    console.print(f"  model info {url}/model/info")
    console.print(f"  MLflow UI  mlflow ui --backend-store-uri {tracking_uri}")
    console.print(
        f"  try it     curl -s -X POST {url}/predict -H 'content-type: application/json' "
        f"-d @{data.parent / 'example.json'}"
    )
