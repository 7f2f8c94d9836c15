"""`mloop k8s switch` against a small Kubernetes API server on 127.0.0.1 (the few endpoints the
switch calls, answering real Kubernetes JSON), through the real `kubernetes` client and a
kubeconfig pointing at it."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from typer.testing import CliRunner

from mloop.cli.main import app
from tests.deploy_files.tools import DEPLOY

pytest.importorskip("kubernetes", reason="the kubernetes extra: pip install 'mloop[kubernetes]'")

BASE = DEPLOY / "kubernetes" / "base"
NS = "mloop"
runner = CliRunner()


class FakeCluster:
    """Services and Deployments in memory; every request recorded."""

    def __init__(self) -> None:
        service = yaml.safe_load((BASE / "service.yaml").read_text().split("---")[0])
        self.services = {(NS, "mloop"): self._place(service)}
        self.deployments = []
        for slot in ("blue", "green"):
            deployment = self._place(yaml.safe_load((BASE / f"deployment-{slot}.yaml").read_text()))
            deployment["metadata"]["generation"] = 1
            deployment["spec"]["replicas"] = 2
            deployment["status"] = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2}
            self.deployments.append(deployment)
        self.requests: list[dict] = []

    @staticmethod
    def _place(obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = NS
        return obj

    def deployment(self, slot: str) -> dict:
        return next(d for d in self.deployments if d["metadata"]["labels"]["slot"] == slot)


def _handler(cluster: FakeCluster):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, what: str) -> None:
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"{what} not found",
                    "reason": "NotFound",
                    "code": 404,
                },
            )

        def _record(self, body: object = None) -> list[str]:
            url = urlparse(self.path)
            cluster.requests.append(
                {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "content_type": self.headers.get("Content-Type"),
                    "auth": self.headers.get("Authorization"),
                    "body": body,
                }
            )
            return url.path.strip("/").split("/")

        def do_GET(self) -> None:  # noqa: N802
            parts = self._record()
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "services":
                service = cluster.services.get((parts[3], parts[5]))
                return self._send(200, service) if service else self._not_found(parts[5])
            if parts[:4] == ["apis", "apps", "v1", "namespaces"] and parts[5] == "deployments":
                query = cluster.requests[-1]["query"].get("labelSelector", [""])[0]
                wanted = dict(pair.split("=", 1) for pair in query.split(",") if pair)
                items = [
                    d
                    for d in cluster.deployments
                    if d["metadata"]["namespace"] == parts[4]
                    and wanted.items() <= d["metadata"]["labels"].items()
                ]
                return self._send(
                    200,
                    {
                        "kind": "DeploymentList",
                        "apiVersion": "apps/v1",
                        "metadata": {},
                        "items": items,
                    },
                )
            self._not_found(self.path)

        def do_PATCH(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            patch = json.loads(self.rfile.read(length))
            parts = self._record(patch)
            service = cluster.services.get((parts[3], parts[5]))
            if service is None:
                return self._not_found(parts[5])
            for op in patch:
                assert op["op"] == "replace", op
                *path, key = op["path"].strip("/").split("/")
                target = service
                for part in path:
                    target = target[part]
                assert key in target, op  # `replace` needs the member to exist
                target[key] = op["value"]
            self._send(200, service)

    return Handler


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "fake", "user": {"token": "test-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    state.kubeconfig = kubeconfig
    yield state
    server.shutdown()
    server.server_close()


def switch(*args: str):
    return runner.invoke(app, ["k8s", "switch", *args, "--namespace", NS])


def live_slot(cluster: FakeCluster) -> str:
    return cluster.services[(NS, "mloop")]["spec"]["selector"]["slot"]


def test_dry_run_prints_the_patch_without_a_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    result = runner.invoke(app, ["k8s", "switch", "green", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"op": "replace", "path": "/spec/selector/slot", "value": "green"}
    ]


def test_switch_and_back(cluster):
    result = switch("green", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["previous"] == "blue" and report["slot"] == "green" and report["changed"]
    assert report["deployments"] == ["mloop-green"] and report["ready"] == 2
    assert live_slot(cluster) == "green"
    (patch,) = [r for r in cluster.requests if r["method"] == "PATCH"]
    assert patch["path"] == f"/api/v1/namespaces/{NS}/services/mloop"
    assert patch["content_type"] == "application/json-patch+json"
    assert patch["auth"] == "Bearer test-token"
    assert patch["body"] == [{"op": "replace", "path": "/spec/selector/slot", "value": "green"}]
    listed = [r for r in cluster.requests if r["path"].endswith("/deployments")]
    assert listed[0]["query"]["labelSelector"] == ["app.kubernetes.io/name=mloop,slot=green"]

    result = switch("blue")
    assert result.exit_code == 0, result.output
    assert "green -> blue" in result.output
    assert live_slot(cluster) == "blue"


def test_switch_to_the_live_slot_changes_nothing(cluster):
    result = switch("blue")
    assert result.exit_code == 0, result.output
    assert "already sends traffic to blue" in result.output
    assert not [r for r in cluster.requests if r["method"] == "PATCH"]


def test_refuses_a_slot_not_fully_ready_unless_forced(cluster):
    cluster.deployment("green")["status"]["readyReplicas"] = 1
    result = switch("green")
    assert result.exit_code == 4, result.output
    assert "slot 'green' is not fully available: 1/2 replicas ready" in result.output
    assert live_slot(cluster) == "blue"
    # a rollout in progress (the controller has not seen the latest spec) is not ready either
    cluster.deployment("green")["status"]["readyReplicas"] = 2
    cluster.deployment("green")["metadata"]["generation"] = 2
    assert switch("green").exit_code == 4
    result = switch("green", "--force", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["forced"] is True
    assert live_slot(cluster) == "green"


def test_errors_name_the_problem(cluster):
    result = switch("purple")
    assert result.exit_code == 2 and "unknown slot 'purple'" in result.output
    result = switch("green", "--service", "nope")
    assert result.exit_code == 3 and f"Service {NS}/nope" in result.output
    cluster.deployments = [cluster.deployment("blue")]
    result = switch("green")
    assert result.exit_code == 3 and "no Deployment in namespace mloop" in result.output
    del cluster.services[(NS, "mloop")]["spec"]["selector"]["slot"]
    result = switch("green")
    assert result.exit_code == 4 and "not a blue-green" in result.output


def test_unreachable_cluster_is_a_clear_error(cluster, tmp_path):
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"  # discard: nothing there
    dead = tmp_path / "dead"
    dead.write_text(yaml.safe_dump(config))
    result = switch("green", "--kubeconfig", str(dead))
    assert result.exit_code == 6, result.output
    assert "the Kubernetes API did not answer" in result.output
    result = switch("green", "--kubeconfig", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "kubeconfig" in result.output
