"""Blue-green on Kubernetes: flip the live Service's `slot` selector through the API.

The live Service (deploy/kubernetes/base/service.yaml) selects the pods of one slot, blue or
green. A switch replaces `/spec/selector/slot` with a JSON patch, after checking that every
replica of the target slot's Deployment is ready, so traffic never moves to pods that cannot
answer. The `kubernetes` client is an optional extra (`mloop[kubernetes]`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from mloop.errors import (
    ConflictError,
    MloopError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    UserError,
    ValidationError,
    require,
)

SLOTS = ("blue", "green")
SLOT_LABEL = "slot"
PATCH_TYPE = "application/json-patch+json"


@dataclass(frozen=True)
class SwitchResult:
    """What a switch did: the Service, the slot before and after, the target's readiness."""

    namespace: str
    service: str
    previous: str
    slot: str
    deployments: list[str]
    ready: int
    replicas: int
    changed: bool
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_slot(slot: str) -> str:
    """The slot name, or ValidationError naming the two slots."""
    if slot not in SLOTS:
        raise ValidationError(f"unknown slot '{slot}'", hint="the slots are blue and green")
    return slot


def switch_patch(slot: str) -> list[dict[str, str]]:
    """The JSON patch (RFC 6902) that makes the Service select `slot`."""
    return [{"op": "replace", "path": f"/spec/selector/{SLOT_LABEL}", "value": check_slot(slot)}]


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A `kubernetes.client.ApiClient` from a kubeconfig (KUBECONFIG, ~/.kube/config) or,
    inside a pod with neither, the pod's service account."""
    client = require("kubernetes.client", "kubernetes")
    config = require("kubernetes.config", "kubernetes")
    configuration = client.Configuration()
    # the client reads KUBECONFIG once, at import: read it now
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
    except (config.ConfigException, FileNotFoundError) as exc:
        if kubeconfig or context:
            raise UserError(
                f"kubeconfig {kubeconfig or '(default)'}: {exc}",
                hint="pass --kubeconfig PATH (and --context NAME) of a cluster you can reach",
            ) from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise UserError(
                f"no Kubernetes configuration found: {exc}",
                hint="set KUBECONFIG or pass --kubeconfig PATH",
            ) from None
    configuration.retries = 0  # a cluster that does not answer fails at once, with its error
    return client.ApiClient(configuration)


def switch(
    api: Any, slot: str, *, namespace: str, service: str, force: bool = False
) -> SwitchResult:
    """Point the Service at `slot` once its Deployment is fully ready (or at once with force)."""
    check_slot(slot)
    client = require("kubernetes.client", "kubernetes")
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    where = f"Service {namespace}/{service}"
    live = _call(lambda: core.read_namespaced_service(service, namespace), where)
    selector = dict(live.spec.selector or {})
    previous = selector.get(SLOT_LABEL)
    if previous is None:
        raise ConflictError(
            f"{where} has no '{SLOT_LABEL}' in its selector: it is not a blue-green Service",
            hint="use the Service of deploy/kubernetes (selector app.kubernetes.io/name, slot)",
        )
    target = {**selector, SLOT_LABEL: slot}
    deployments = _slot_deployments(apps, namespace, target)
    ready = sum(_ready(d) for d in deployments)
    replicas = sum(_replicas(d) for d in deployments)
    names = [d.metadata.name for d in deployments]
    complete = all(_complete(d) for d in deployments)
    if not complete and not force and previous != slot:
        raise ConflictError(
            f"slot '{slot}' is not fully available: {ready}/{replicas} replicas ready in "
            f"{', '.join(names)} (namespace {namespace})",
            hint="wait for its rollout (kubectl rollout status), or pass --force",
        )
    changed = previous != slot
    if changed:
        _call(
            lambda: core.patch_namespaced_service(
                service, namespace, switch_patch(slot), _content_type=PATCH_TYPE
            ),
            where,
        )
    return SwitchResult(
        namespace=namespace,
        service=service,
        previous=previous,
        slot=slot,
        deployments=names,
        ready=ready,
        replicas=replicas,
        changed=changed,
        forced=force and not complete and changed,
    )


def _slot_deployments(apps: Any, namespace: str, selector: dict[str, str]) -> list[Any]:
    """The Deployments whose pods carry every label of `selector`."""
    labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    found = _call(
        lambda: apps.list_namespaced_deployment(namespace, label_selector=labels),
        f"Deployments in namespace {namespace}",
    )
    matching = [
        d
        for d in found.items
        if selector.items() <= dict(d.spec.template.metadata.labels or {}).items()
    ]
    if not matching:
        raise NotFoundError(
            f"no Deployment in namespace {namespace} runs pods labelled {labels}",
            hint="apply the slot's Deployment first (deploy/kubernetes), or check --namespace",
        )
    return matching


def _replicas(deployment: Any) -> int:
    wanted = deployment.spec.replicas
    return 1 if wanted is None else int(wanted)


def _ready(deployment: Any) -> int:
    return int((deployment.status and deployment.status.ready_replicas) or 0)


def _complete(deployment: Any) -> bool:
    """Every wanted replica ready, on the Deployment's latest generation."""
    status = deployment.status
    observed = (status and status.observed_generation) or 0
    current = deployment.metadata.generation or 0
    replicas = _replicas(deployment)
    return replicas > 0 and _ready(deployment) >= replicas and observed >= current


def _call(request: Any, what: str) -> Any:
    """Run one API request; Kubernetes errors become mloop errors naming `what`."""
    client = require("kubernetes.client", "kubernetes")
    urllib3 = require("urllib3", "kubernetes")
    try:
        return request()
    except client.ApiException as exc:
        raise _api_error(exc, what) from None
    except urllib3.exceptions.HTTPError as exc:
        raise ServiceUnavailableError(
            f"the Kubernetes API did not answer ({what}): {exc}",
            hint="check the cluster address in your kubeconfig (kubectl cluster-info)",
        ) from None


def _api_error(exc: Any, what: str) -> MloopError:
    reason = f"{what}: {exc.status} {exc.reason}"
    if exc.status == 404:
        return NotFoundError(f"{reason} (not found)", hint="check --namespace and --service")
    if exc.status in (401, 403):
        return PermissionDeniedError(
            reason,
            hint="the identity needs get/patch on services and list on deployments "
            "(Role mloop-switcher in deploy/kubernetes/base/rbac.yaml)",
        )
    if exc.status == 409:
        return ConflictError(reason)
    if exc.status == 422:
        return ValidationError(reason)
    return ServiceUnavailableError(reason)
