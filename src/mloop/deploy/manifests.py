"""A deployment spec as a kustomize overlay of deploy/kubernetes/base.

Blue-green and single map onto Kubernetes itself: each slot's Deployment serves its variant's
model, and the live Service selects the active slot (`mloop k8s switch` flips it). A/B, canary
and shadow split traffic inside mloop (sticky hashing, SLO-judged steps, mirroring), so one
slot serves the deployment and a Job runs `mloop deploy apply` on the spec, held in a
ConfigMap, before the servers pick it up. The overlay is plain YAML: review it, commit it,
`kubectl apply -k` it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from mloop.deploy.spec import DeploymentSpec, Policy
from mloop.errors import NotFoundError, ValidationError

_K8S_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_PREFIX = 40  # the longest object name, "<name>-mloop-apply-<8 hex>", stays within 63
SERVE_ARGS = ["serve", "--host", "0.0.0.0", "--port", "8000"]
SPEC_FILE = "deployment.yaml"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the patches) as literal blocks, readable in the overlay."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _literal)


def instance_name(spec: DeploymentSpec, name: str | None = None) -> str:
    """The Kubernetes name of the deployment: lower case, `_` and `.` become `-`."""
    value = name or spec.name.lower().replace("_", "-").replace(".", "-")
    if not _K8S_NAME.match(value) or len(value) > MAX_PREFIX:
        raise ValidationError(
            f"'{value}' is not usable as a Kubernetes name (lower-case letters, digits and '-', "
            f"starting with a letter, at most {MAX_PREFIX} characters)",
            hint="pass --name NAME",
        )
    return value


def render_overlay(
    spec: DeploymentSpec,
    out: Path,
    *,
    base: Path,
    name: str | None = None,
    image_tag: str | None = None,
    namespace: str = "mloop",
) -> list[Path]:
    """Write the overlay for `spec` into `out` (kustomization.yaml and its files)."""
    base = Path(base)
    if not (base / "kustomization.yaml").is_file():
        raise NotFoundError(
            f"no kustomize base at {base}",
            hint="run from the mloop repository or pass --base deploy/kubernetes/base",
        )
    instance = instance_name(spec, name)
    out.mkdir(parents=True, exist_ok=True)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "namePrefix": f"{instance}-",
        "resources": [os.path.relpath(base.resolve(), out.resolve())],
        "labels": [
            {"pairs": {"app.kubernetes.io/instance": instance}, "includeSelectors": True},
            {"pairs": {"mloop.io/deployment": spec.name}, "includeSelectors": False},
        ],
        "patches": [_monitor_patch(instance)],
    }
    if image_tag:
        kustomization["images"] = [{"name": "mloop", "newTag": image_tag}]
    written = [out / "kustomization.yaml"]
    if spec.policy is Policy.BLUE_GREEN:
        active = spec.primary
        for slot in ("blue", "green"):
            kustomization["patches"].append(_model_patch(slot, spec.variant(slot).model))
        kustomization["patches"].append(_service_patch(active))
    elif spec.policy is Policy.SINGLE:
        kustomization["patches"].append(_model_patch("blue", spec.variants[0].model))
        kustomization["patches"].extend(_drop_green())
    else:
        kustomization["patches"].append(_args_patch("blue", SERVE_ARGS))
        kustomization["patches"].extend(_drop_green())
        # this instance exists to serve the spec: /predict (and /ready) follow it
        document = {**spec.to_json(), "default": True}
        text = yaml.safe_dump(document, sort_keys=False)
        (out / SPEC_FILE).write_text(text, encoding="utf-8")
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:8]
        (out / "job.yaml").write_text(_apply_job(digest), encoding="utf-8")
        kustomization["resources"].append("job.yaml")
        kustomization["configMapGenerator"] = [
            {"name": "mloop-deployment-spec", "files": [SPEC_FILE]}
        ]
        written += [out / SPEC_FILE, out / "job.yaml"]
    header = (
        f"# Rendered by `mloop deploy render --target kubernetes` from deployment "
        f"'{spec.name}' (policy {spec.policy.value}).\n"
    )
    text = header + yaml.dump(kustomization, Dumper=_Dumper, sort_keys=False)
    (out / "kustomization.yaml").write_text(text, encoding="utf-8")
    return written


def _patch(kind: str, name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "target": {"kind": kind, "name": name},
        "patch": yaml.safe_dump(operations, sort_keys=False),
    }


def _model_patch(slot: str, model: str) -> dict[str, Any]:
    path = "/spec/template/spec/containers/0/env/0"
    operations = [
        {"op": "test", "path": f"{path}/name", "value": "MODEL_REF"},
        {"op": "replace", "path": f"{path}/value", "value": model},
    ]
    return _patch("Deployment", f"mloop-{slot}", operations)


def _args_patch(slot: str, args: list[str]) -> dict[str, Any]:
    operations = [{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": args}]
    return _patch("Deployment", f"mloop-{slot}", operations)


def _service_patch(slot: str) -> dict[str, Any]:
    operations = [{"op": "replace", "path": "/spec/selector/slot", "value": slot}]
    return _patch("Service", "mloop", operations)


def _monitor_patch(instance: str) -> dict[str, Any]:
    # kustomize does not know ServiceMonitor selectors: without this, each instance's monitor
    # would scrape every instance's pods
    operations = [
        {
            "op": "add",
            "path": "/spec/selector/matchLabels/app.kubernetes.io~1instance",
            "value": instance,
        }
    ]
    return _patch("ServiceMonitor", "mloop", operations)


def _drop_green() -> list[dict[str, Any]]:
    # a JSON patch cannot delete an object; a strategic-merge `$patch: delete` can
    return [
        {
            "patch": yaml.safe_dump(
                {
                    "apiVersion": api,
                    "kind": kind,
                    "metadata": {"name": "mloop-green"},
                    "$patch": "delete",
                },
                sort_keys=False,
            )
        }
        for api, kind in (
            ("apps/v1", "Deployment"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
        )
    ]


def _apply_job(digest: str) -> str:
    """The Job that writes the spec into the platform database (`mloop deploy apply`)."""
    return f"""\
# Writes the deployment spec into the platform database; the servers pick it up on their
# poll (MLOOP_DEPLOYMENT_POLL_SECONDS). Its name carries the spec's digest: a changed spec is
# a new Job.
apiVersion: batch/v1
kind: Job
metadata:
  name: mloop-apply-{digest}
  labels:
    app.kubernetes.io/name: mloop
    app.kubernetes.io/component: apply
spec:
  backoffLimit: 3
  ttlSecondsAfterFinished: 86400
  template:
    metadata:
      labels:
        app.kubernetes.io/name: mloop
        app.kubernetes.io/component: apply
    spec:
      restartPolicy: OnFailure
      serviceAccountName: mloop
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: apply
          image: mloop:0.1.0
          imagePullPolicy: Always
          args: ["deploy", "apply", "/etc/mloop/{SPEC_FILE}"]
          envFrom:
            - configMapRef:
                name: mloop-config
            - secretRef:
                name: mloop-secrets
          resources:
            requests: {{cpu: 100m, memory: 256Mi, ephemeral-storage: 64Mi}}
            limits: {{cpu: 500m, memory: 512Mi, ephemeral-storage: 256Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: spec
              mountPath: /etc/mloop
              readOnly: true
            - name: tmp
              mountPath: /tmp
            - name: home
              mountPath: /var/lib/mloop
      volumes:
        - name: spec
          configMap:
            name: mloop-deployment-spec
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        - name: home
          emptyDir:
            sizeLimit: 64Mi
"""
