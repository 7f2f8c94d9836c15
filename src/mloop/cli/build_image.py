"""`mloop build-image NAME@ALIAS -t TAG`: a container image serving that model version."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path

import typer

from mloop.cli.console import console
from mloop.packaging.builder import DEFAULT_BASE_IMAGE, BuildOptions, find_builder
from mloop.settings import get_settings


def build_image(
    model_ref: str = typer.Argument(
        ..., help="Model version to bake in: NAME@ALIAS (churn@production) or NAME/VERSION."
    ),
    tag: str = typer.Option(..., "-t", "--tag", help="Name of the image to build (mloop-churn:1)."),
    builder: str = typer.Option(
        "auto", "--builder", help="docker, podman, or auto: the first of them that works."
    ),
    base_image: str = typer.Option(
        DEFAULT_BASE_IMAGE,
        "--base-image",
        help="Python 3.11 image the server image starts from (the Dockerfile's BASE_IMAGE).",
    ),
    server_image: str | None = typer.Option(
        None,
        "--server-image",
        help="An mloop server image already built from the Dockerfile: skips that build.",
    ),
    extras: str | None = typer.Option(
        None,
        "--extras",
        help="mloop extras in the server image, comma-separated [the Dockerfile's "
        "postgres,redis,celery,s3].",
    ),
    network: str | None = typer.Option(
        None, "--network", help="Network of the build steps (host: the host's network)."
    ),
    ca_bundle: Path | None = typer.Option(
        None,
        "--ca-bundle",
        exists=True,
        dir_okay=False,
        help="CA certificates pip trusts during the build (a TLS-intercepting proxy), passed "
        "as the build secret `ca`.",
    ),
    context: Path | None = typer.Option(
        None, "--context", file_okay=False, help="Folder for the model build context, kept."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Prepare the context, print it and the build commands; no build."
    ),
) -> None:
    """Build a container image that serves one model version with no registry access.

    Like `mlflow models build-docker`: the version the reference names now is copied into the
    image with its pinned requirements (the model's requirements.txt), after its files are
    checked against the digest recorded at registration. The image is mloop's server image
    (the repository's Dockerfile, built first and cached) plus the model; it runs
    `mloop serve /opt/mloop/model` as a non-root user and carries OCI labels with the model's
    name, version and content digest (io.mloop.model.*).

    Example: mloop build-image churn@production -t mloop-churn:1

    Example: mloop build-image churn/3 -t mloop-churn:3 --builder podman --network host
    --ca-bundle /etc/ssl/certs/ca-certificates.crt --base-image localhost/python-base:3.11
    """
    # lazy: the registry and model layers (sklearn, +1.2 s) would load on every `mloop` start
    from mloop.packaging.image import build_model_image

    settings = get_settings()
    options = BuildOptions(builder=find_builder(builder), network=network, ca_bundle=ca_bundle)
    folder = context or Path(tempfile.mkdtemp(prefix="mloop-image-"))
    try:
        plan = build_model_image(
            model_ref,
            tag,
            settings,
            options,
            folder,
            server_image=server_image,
            base_image=base_image,
            extras=extras,
            dry_run=dry_run,
        )
    finally:
        if context is None and not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    model = plan.context
    checked = "matches its recorded digest" if model.verified else "no digest recorded"
    # typer.echo, not Rich: commands and paths must not be wrapped at the terminal's width
    typer.echo(f"{model.name}/{model.version} {model.digest} ({checked})")
    if dry_run:
        typer.echo(f"build context {model.path}:")
        for path in sorted(model.path.rglob("*")):
            if path.is_file():
                typer.echo(f"  {path.relative_to(model.path)}")
        typer.echo("commands:")
        for command in plan.commands:
            typer.echo(f"  {shlex.join(command)}")
        return
    console.print(f"[bold]Built[/] {plan.tag}", highlight=False)
    typer.echo(f"  run it: {options.builder} run --rm -p 127.0.0.1:8000:8000 {plan.tag}")
