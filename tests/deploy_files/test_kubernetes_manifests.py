"""deploy/kubernetes checked offline: kustomize renders, every object fits the Kubernetes
OpenAPI schemas (strict), the slots stay in step, `mloop deploy render` output does the same,
and checkov finds nothing but the checks skipped below, each with its reason."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.serving.metrics import ServingMetrics
from tests.deploy_files.tools import DEPLOY, ROOT, run, tool
from tests.support import loopkit

K8S = DEPLOY / "kubernetes"
KUBE_VERSION = "1.37"  # the newest schemas kubernetes-validate bundles
OVERLAYS = ["overlays/dev", "overlays/prod", "prometheus-adapter"]
EXAMPLES = sorted((ROOT / "examples" / "deployments").glob("*.yaml"))
# Custom resources: not in the core schemas; checked by `test_service_monitor_scrapes_pods`.
CRD_KINDS = {"ServiceMonitor"}
# checkov offline reports no severities (they come from its cloud service), so the test is
# stricter than "no HIGH": every failed check fails it, except these, each for its reason.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "image by digest: the digest exists once the image is built; set it with "
    "`images: [{name: mloop, digest: sha256:...}]` in your overlay",
    "CKV_K8S_35": "secrets as files: mloop reads its settings (MLOOP_DATABASE_URL, ...) from "
    "the environment only",
}
CHECKOV_VENV = ROOT / ".venv-tools" / "checkov"

runner = CliRunner()


def kustomize(folder: Path) -> list[dict]:
    kubectl = tool("kubectl", "install kubectl (it renders kustomize offline)")
    done = run(kubectl, "kustomize", str(folder))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def validator():
    try:
        import kubernetes_validate  # lazy: a test-only tool, absent outside the dev extra
    except ImportError:
        loopkit.tool_missing("kubernetes-validate is not installed: pip install -e '.[dev]'")
    return kubernetes_validate


def validate_all(objects: list[dict]) -> list[str]:
    """Every core object validated strictly; returns the kinds checked."""
    kv = validator()
    checked = []
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kv.validate(obj, KUBE_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
        checked.append(obj["kind"])
    return checked


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, kustomize(K8S / request.param)


def test_every_overlay_renders_and_validates(rendered):
    name, objects = rendered
    kinds = validate_all(objects)
    if name == "prometheus-adapter":
        assert kinds == ["ConfigMap"]
        return
    for kind in (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
        "Role",
    ):
        assert kind in kinds, f"{name} renders no {kind}"
    assert by_kind(objects, "ServiceMonitor"), f"{name} renders no ServiceMonitor"


def test_strict_validation_refuses_an_unknown_field():
    objects = kustomize(K8S / "overlays" / "prod")
    deployment = copy.deepcopy(by_kind(objects, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    kv = validator()
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_servers_are_hardened_and_probed(overlay):
    objects = kustomize(K8S / overlay)
    deployments = by_kind(objects, "Deployment")
    assert sorted(d["spec"]["template"]["metadata"]["labels"]["slot"] for d in deployments) == [
        "blue",
        "green",
    ]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert container["startupProbe"]["httpGet"]["path"] == "/health"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        drain = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > drain
        assert "0.0.0.0" in container["args"] and container["args"][0] == "serve"
        assert container["image"].startswith("mloop:")
        assert {"requests", "limits"} <= set(container["resources"])
        assert pod["topologySpreadConstraints"]
        refs = {next(iter(r)) for r in container["envFrom"]}
        assert refs == {"configMapRef", "secretRef"}
    tags = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments}
    assert tags == {"mloop:dev" if overlay.endswith("dev") else "mloop:0.1.0"}


def test_live_service_selects_one_slot_and_pods_service_both():
    objects = kustomize(K8S / "overlays" / "prod")
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    assert services["mloop"]["spec"]["selector"]["slot"] == "blue"
    assert "slot" not in services["mloop-pods"]["spec"]["selector"]
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(objects, "Deployment")]
    for name, service in services.items():
        selector = service["spec"]["selector"].items()
        matched = [labels["slot"] for labels in pods if selector <= labels.items()]
        assert matched == (["blue"] if name == "mloop" else ["blue", "green"]), name


def test_green_slot_is_blue_with_its_slot_and_model():
    blue = yaml.safe_load((K8S / "base" / "deployment-blue.yaml").read_text())
    green = yaml.safe_load((K8S / "base" / "deployment-green.yaml").read_text())
    text = json.dumps(blue).replace("blue", "green").replace("churn@production", "churn@candidate")
    assert json.loads(text) == green


def test_service_monitor_scrapes_pods():
    objects = kustomize(K8S / "overlays" / "prod")
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    services = [
        s for s in by_kind(objects, "Service") if selector <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["mloop-pods"]
    ports = {p["name"] for p in services[0]["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_autoscaler_metric_comes_from_the_adapter_rule_on_an_exported_series():
    objects = kustomize(K8S / "overlays" / "prod")
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "config.yaml").read_text())["rules"]
    served = {rule["name"]["as"]: rule["seriesQuery"].split("{")[0] for rule in rules}
    exported = {
        sample.name for family in ServingMetrics().registry.collect() for sample in family.samples
    }
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert pods, hpa["metadata"]["name"]
        for metric in pods:
            assert metric in served
            series = served[metric]
            # unlabelled histograms export no sample until observed: compare the family name
            assert series in exported or series.removesuffix("_count") in {
                f.name for f in ServingMetrics().registry.collect()
            }
    kinds = [m["type"] for m in by_kind(objects, "HorizontalPodAutoscaler")[0]["spec"]["metrics"]]
    assert kinds == ["Resource", "Pods"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_of_each_example_renders_and_validates(example, tmp_path):
    out = tmp_path / example.stem
    result = runner.invoke(
        app,
        [
            "deploy",
            "render",
            "--target",
            "kubernetes",
            str(example),
            "-o",
            str(out),
            "--base",
            str(K8S / "base"),
            "--image-tag",
            "1.2.3",
        ],
    )
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(example.read_text())
    objects = kustomize(out)
    validate_all(objects)
    deployments = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]
        for d in by_kind(objects, "Deployment")
    }
    prefix = spec["name"] + "-"
    (live,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == prefix + "mloop"]
    assert all(c["image"] == "mloop:1.2.3" for c in deployments.values())
    if spec["policy"] == "blue_green":
        assert set(deployments) == {prefix + "mloop-blue", prefix + "mloop-green"}
        models = {v["name"]: v["model"] for v in spec["variants"]}
        for slot in ("blue", "green"):
            env = deployments[f"{prefix}mloop-{slot}"]["env"]
            assert {"name": "MODEL_REF", "value": models[slot]} in env
        assert live["spec"]["selector"]["slot"] == spec["blue_green"]["active"]
        assert not by_kind(objects, "Job")
        return
    assert set(deployments) == {prefix + "mloop-blue"}
    assert live["spec"]["selector"]["slot"] == "blue"
    container = deployments[prefix + "mloop-blue"]
    if spec["policy"] == "single":
        assert {"name": "MODEL_REF", "value": spec["variants"][0]["model"]} in container["env"]
        assert not by_kind(objects, "Job")
        return
    assert "$(MODEL_REF)" not in container["args"]  # serves the deployment, not one model
    (job,) = by_kind(objects, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["deploy", "apply"]
    (held,) = [c for c in by_kind(objects, "ConfigMap") if "deployment.yaml" in c.get("data", {})]
    document = yaml.safe_load(held["data"]["deployment.yaml"])
    assert document["name"] == spec["name"] and document["default"] is True
    assert document["variants"] == [{k: v for k, v in x.items()} for x in spec["variants"]]


def test_render_refuses_bad_input(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Churn_AB\npolicy: single\nvariants: [{name: a, model: churn/1}]\n")
    result = runner.invoke(
        app,
        [
            "deploy",
            "render",
            str(bad),
            "-o",
            str(tmp_path / "o"),
            "--base",
            str(K8S / "base"),
            "--name",
            "Bad_Name",
        ],
    )
    assert result.exit_code == 2 and "not usable as a Kubernetes name" in result.output
    result = runner.invoke(app, ["deploy", "render", str(bad), "--target", "nomad"])
    assert result.exit_code == 2 and "unknown target 'nomad'" in result.output
    result = runner.invoke(
        app, ["deploy", "render", str(bad), "-o", str(tmp_path / "o"), "--base", str(tmp_path)]
    )
    assert result.exit_code == 3 and "no kustomize base" in result.output
    # `_` becomes `-`: the spec's own name is usable
    result = runner.invoke(
        app, ["deploy", "render", str(bad), "-o", str(tmp_path / "o"), "--base", str(K8S / "base")]
    )
    assert result.exit_code == 0, result.output
    assert "namePrefix: churn-ab-" in (tmp_path / "o" / "kustomization.yaml").read_text()


@pytest.fixture(scope="module")
def checkov() -> str:
    """checkov in its own venv (.venv-tools/checkov): its pinned dependencies clash with mloop's."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if not binary.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
            subprocess.run(
                [str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", "checkov==3.3.*"],
                check=True,
                capture_output=True,
                timeout=900,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            loopkit.tool_missing(f"checkov could not be installed in {CHECKOV_VENV}: {exc}")
    return str(binary)


def test_checkov_finds_nothing_unexplained(checkov, tmp_path):
    files = []
    for overlay in ("overlays/dev", "overlays/prod"):
        path = tmp_path / (overlay.replace("/", "-") + ".yaml")
        path.write_text(yaml.safe_dump_all(kustomize(K8S / overlay)))
        files.append(path)
    bg = tmp_path / "canary"
    result = runner.invoke(
        app,
        [
            "deploy",
            "render",
            str(ROOT / "examples/deployments/canary.yaml"),
            "-o",
            str(bg),
            "--base",
            str(K8S / "base"),
        ],
    )
    assert result.exit_code == 0, result.output
    canary = tmp_path / "canary.yaml"
    canary.write_text(yaml.safe_dump_all(kustomize(bg)))
    files.append(canary)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    args = [checkov, "--framework", "kubernetes", "--skip-download", "--quiet", "-o", "json"]
    for path in files:
        args += ["-f", str(path)]
    args += ["--skip-check", ",".join(CHECKOV_SKIPS)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert sum(r["summary"]["passed"] for r in reports) > 100  # it did check the files
    assert done.returncode == 0, done.stderr[-2000:]
