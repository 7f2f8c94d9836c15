"""`mloop deploy render`: a deployment spec as manifests for a target platform."""

from __future__ import annotations

from pathlib import Path

import typer

from mloop.cli.console import console
from mloop.errors import ValidationError

TARGETS = ("kubernetes",)


def render(
    spec_file: Path = typer.Argument(..., help="Deployment spec (YAML)."),
    target: str = typer.Option("kubernetes", "--target", help="Target platform: kubernetes."),
    out: Path = typer.Option(
        None, "-o", "--output", help="Folder to write (default: deploy/kubernetes/rendered/NAME)."
    ),
    base: Path = typer.Option(
        Path("deploy/kubernetes/base"), "--base", help="The kustomize base the overlay uses."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Kubernetes name prefix (default: the spec's name)."
    ),
    image_tag: str | None = typer.Option(None, "--image-tag", help="Tag of the mloop image."),
    namespace: str = typer.Option("mloop", "--namespace", "-n", help="Namespace."),
) -> None:
    """Render a deployment spec into a kustomize overlay of deploy/kubernetes/base.

    blue_green and single run one Deployment per slot serving its model; ab, canary and shadow
    run one slot serving the deployment, applied by a Job. Then: kubectl apply -k DIR

    Example: mloop deploy render --target kubernetes examples/deployments/blue_green.yaml -o k8s/bg
    """
    # lazy: importing the mloop.deploy package costs +0.4 s at CLI start-up
    from mloop.deploy.manifests import instance_name, render_overlay
    from mloop.deploy.spec import load_spec  # lazy: see above

    if target not in TARGETS:
        raise ValidationError(f"unknown target '{target}'", hint=f"targets: {', '.join(TARGETS)}")
    spec = load_spec(spec_file)
    out = out or Path("deploy/kubernetes/rendered") / instance_name(spec, name)
    written = render_overlay(
        spec, out, base=base, name=name, image_tag=image_tag, namespace=namespace
    )
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    console.print(f"apply with: kubectl apply -k {out}", highlight=False)
