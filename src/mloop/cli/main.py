"""Root of the `mloop` CLI. User errors print one line and a hint, never a traceback."""

from __future__ import annotations

import os

import typer
from typer.core import TyperGroup

from mloop import __version__
from mloop.cli import (
    approvals,
    audit,
    batch_predict,
    build_image,
    config_cmd,
    data,
    demo,
    deploy,
    drift,
    feast_cmd,
    features,
    jobs,
    k8s,
    keys,
    models,
    optimize,
    predictions,
    retention,
    serve,
    skew,
    token,
    train,
    users,
    worker,
)
from mloop.cli.console import err_console
from mloop.errors import MloopError


class _CliError(typer.Exit):
    """Carries an MloopError out of Click with its exit code, after printing it."""


class MloopGroup(TyperGroup):
    """Root group that turns MloopError into a clear message and the error's exit code."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MloopError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            if exc.hint:
                err_console.print(f"[bold]hint:[/] {exc.hint}", highlight=False)
            raise _CliError(code=exc.exit_code) from None


app = typer.Typer(
    cls=MloopGroup,
    name="mloop",
    help=(
        "mloop runs the whole machine-learning loop: train, track, register, serve, monitor.\n\n"
        "Example: mloop demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mloop: train, track, register, govern, deploy, serve, monitor, retrain."""
    # MLflow's INFO lines (database set-up, registry chatter) bury mloop's own output.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _register() -> None:
    """Attach every command group; each module owns one group or command."""
    # the loop: configure, make data, train, register, serve
    app.command("config")(config_cmd.config)
    app.add_typer(data.app, name="data")
    app.add_typer(features.app, name="features")  # features.yaml: infer, check
    feast_cmd.register(features.app)  # Feast: feast-env, materialize, history, online
    app.command("train")(train.train)
    app.add_typer(models.app, name="models")
    app.command("serve")(serve.serve)
    app.command("demo")(demo.demo)
    app.command("optimize")(optimize.optimize)  # ONNX compilation
    app.command("build-image")(build_image.build_image)  # a container serving one version
    # governance and security
    app.add_typer(users.app, name="users")
    app.add_typer(keys.app, name="keys")
    app.add_typer(token.app, name="token")
    app.add_typer(approvals.app, name="approvals")
    app.add_typer(audit.app, name="audit")
    app.add_typer(retention.app, name="retention")  # prune behind a signed checkpoint
    # deployments, async jobs and batch scoring, monitoring
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(k8s.app, name="k8s")  # blue-green switch of deploy/kubernetes
    app.add_typer(jobs.app, name="jobs")
    app.command("worker")(worker.worker)
    app.command("batch-predict")(batch_predict.batch_predict)
    app.command("drift")(drift.drift)
    app.command("skew")(skew.skew)  # train/serve skew of a served version
    app.add_typer(predictions.app, name="predictions")  # export the prediction log


_register()


def main() -> None:
    """Console-script entry point."""
    app()
