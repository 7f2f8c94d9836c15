"""`mloop k8s ...`: Kubernetes operations on the manifests of deploy/kubernetes."""

from __future__ import annotations

import json

import typer

from mloop.cli.console import console

app = typer.Typer(
    help="Kubernetes: the blue-green switch of the manifests in deploy/kubernetes.\n\n"
    "Example: mloop k8s switch green --namespace mloop",
    no_args_is_help=True,
)


@app.command("switch")
def switch_cmd(
    slot: str = typer.Argument(..., help="Slot to send traffic to: blue or green."),
    namespace: str = typer.Option("mloop", "--namespace", "-n", help="Namespace."),
    service: str = typer.Option("mloop", "--service", help="The live Service to flip."),
    force: bool = typer.Option(
        False, "--force", help="Switch even when the slot's Deployment is not fully ready."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the JSON patch and exit; no cluster is contacted."
    ),
    kubeconfig: str | None = typer.Option(
        None, "--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)."
    ),
    context: str | None = typer.Option(None, "--context", help="kubeconfig context."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Point the live Service at a slot once every replica of that slot's Deployment is ready.

    Switching back is the same command with the other slot.

    Example: mloop k8s switch green -n mloop      (then: mloop k8s switch blue -n mloop)

    Example: mloop k8s switch green --dry-run     (prints the patch)
    """
    # lazy: importing the mloop.deploy package costs +0.4 s at CLI start-up
    from mloop.deploy.kubernetes import api_client, check_slot, switch, switch_patch

    check_slot(slot)
    if dry_run:
        typer.echo(json.dumps(switch_patch(slot), indent=2))
        return
    result = switch(
        api_client(kubeconfig, context), slot, namespace=namespace, service=service, force=force
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif not result.changed:
        console.print(f"Service {namespace}/{service} already sends traffic to {slot}")
    else:
        forced = " [bold red](forced)[/]" if result.forced else ""
        console.print(
            f"Service {namespace}/{service}: {result.previous} -> [bold]{slot}[/]{forced} "
            f"({result.ready}/{result.replicas} replicas ready in "
            f"{', '.join(result.deployments)})"
        )
