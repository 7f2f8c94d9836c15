"""Root of the `mloop` CLI. User errors print one line and a hint, never a traceback."""

from __future__ import annotations

import os

import typer
from typer.core import TyperGroup

from mloop import __version__
from mloop.cli.console import err_console
from mloop.cli.lazy import Entry, LazyCommands
from mloop.errors import MloopError


class _CliError(typer.Exit):
    """Carries an MloopError out of Click with its exit code, after printing it."""


class MloopGroup(TyperGroup):
    """Root group that turns MloopError into a clear message and the error's exit code, and
    imports each command's module only when that command runs (`mloop.cli.lazy`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands, COMMANDS)

    def list_commands(self, ctx):  # type: ignore[override]
        return list(self.commands)  # the names only: nothing is imported

    def format_help(self, ctx, formatter):  # type: ignore[override]
        self.commands.listing = True  # unloaded commands show their table line
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.commands.listing = False

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MloopError as exc:
            # soft_wrap: a path or a name in the message is never broken across lines
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[bold]hint:[/] {exc.hint}", highlight=False, soft_wrap=True)
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


# Every root command: module and attribute in mloop.cli (a command function or a Typer group),
# and the first line of its help, shown by `mloop --help` without importing the module
# (tests/cli/test_startup_imports.py keeps the lines equal to the docstrings).
COMMANDS: dict[str, Entry] = {
    # the loop: configure, make data, train, register, serve
    "config": Entry(
        "config_cmd", "config", "Print the effective configuration and the source of each value."
    ),
    "init": Entry(  # a new project: params, features, data, DVC, tests, Makefile, CI
        "init_cmd",
        "init",
        "Write a project: params.yaml, features.yaml, sample data, dvc.yaml, tests, Makefile, CI.",
    ),
    "train": Entry(
        "train",
        "train",
        "Train, evaluate and log a model; register it when the config's criteria pass.",
    ),
    "prepare": Entry(  # DVC stage before train
        "stages",
        "prepare",
        "Split a table into train.csv and test.csv as params.yaml's `preprocess` says.",
    ),
    "evaluate": Entry(  # DVC stage after train
        "stages",
        "evaluate",
        "Score the version a train report names on held-out data: metrics.json and plots/*.csv.",
    ),
    "serve": Entry(
        "serve",
        "serve",
        "Serve a registered model over HTTP (predict, batch, health, readiness, metrics).",
    ),
    "demo": Entry(
        "demo",
        "demo",
        "Run the whole loop: data -> train -> register -> promote -> serve -> predict.",
    ),
    "optimize": Entry(  # ONNX compilation
        "optimize",
        "optimize",
        "Convert a registered scikit-learn model to ONNX and register it as a new version.",
    ),
    "build-image": Entry(  # a container serving one version
        "build_image",
        "build_image",
        "Build a container image that serves one model version with no registry access.",
    ),
    "worker": Entry(
        "worker",
        "worker",
        "Run queued async jobs from the platform database until stopped (Ctrl-C).",
    ),
    "batch-predict": Entry(
        "batch_predict",
        "batch_predict",
        "Score every row of INPUT and write id, prediction, probability and model version.",
    ),
    "drift": Entry(
        "drift",
        "drift",
        "Detect data drift between a reference and a current table, per column and overall.",
    ),
    "skew": Entry(  # train/serve skew of a served version
        "skew",
        "skew",
        "Train/serve skew per feature: the training profile against the served rows.",
    ),
    "data": Entry("data", "app", "Generate example data."),
    "features": Entry(  # features.yaml: infer, check; Feast: feast-env, materialize, ...
        "features",
        "app",
        "The feature contract (features.yaml): types, ranges, allowed values, where used.",
    ),
    "models": Entry(
        "models",
        "app",
        "Registered models: versions, stages (None, Staging, Production, Archived), lineage "
        "and rollback.",
    ),
    # governance and security
    "users": Entry("users", "app", "Identities (people and services) and their roles."),
    "keys": Entry("keys", "app", "API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`."),
    "token": Entry(
        "token",
        "app",
        "Bearer tokens (JWT HS256, signed with MLOOP_JWT_SECRET or $MLOOP_HOME/jwt.key).",
    ),
    "approvals": Entry(
        "approvals",
        "app",
        "Approval requests for promotions: gates computed by mloop, approvals by distinct "
        "identities holding the policy's roles; the last approval promotes.",
    ),
    "audit": Entry(
        "audit",
        "app",
        "The tamper-evident audit trail (HMAC-SHA256 chain in the platform database).",
    ),
    "retention": Entry(  # prune behind a signed checkpoint
        "retention",
        "app",
        "How long predictions, feedback and audit rows are kept (MLOOP_RETENTION_*).",
    ),
    # deployments, async jobs and batch scoring, monitoring
    "deploy": Entry(
        "deploy",
        "app",
        "Deployments: named specs of model variants with a traffic policy (single, ab, "
        "canary, shadow, blue_green), versioned in the platform database.",
    ),
    "k8s": Entry(  # blue-green switch of deploy/kubernetes
        "k8s", "app", "Kubernetes: the blue-green switch of the manifests in deploy/kubernetes."
    ),
    "jobs": Entry("jobs", "app", "Async jobs (POST /predict/async): list, inspect, cancel."),
    "predictions": Entry(  # export the prediction log
        "predictions",
        "app",
        "The prediction log (what each version answered, with its inputs).",
    ),
}


def main() -> None:
    """Console-script entry point."""
    app()
