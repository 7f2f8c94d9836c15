"""deploy/compose: `podman-compose config` accepts it, and the stack is wired as documented."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy_files.tools import COMPOSE, tool

ENV_EXAMPLE = COMPOSE.parent / ".env.example"
LONG_RUNNING = {
    "api", "worker", "mlflow", "postgres", "minio", "redis", "prometheus", "node-exporter",
    "alertmanager", "grafana",
}  # fmt: skip


@pytest.fixture(scope="module")
def config() -> dict:
    """The file as podman-compose resolves it (anchors merged, variables at their defaults)."""
    from tests.deploy_files.tools import run

    result = run(tool("podman-compose", "pip install podman-compose"), "-f", str(COMPOSE), "config")
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout)


def test_podman_compose_accepts_the_file_with_every_service(config):
    assert LONG_RUNNING | {"minio-init"} == set(config["services"])


def test_the_api_runs_two_workers_and_the_job_worker_runs_mloop_worker(config):
    api, worker = config["services"]["api"], config["services"]["worker"]
    assert api["command"][:2] == ["serve", "churn@production"]
    assert api["command"][api["command"].index("--workers") + 1] == "2"
    assert api["build"]["context"] == str(COMPOSE.parents[2])
    assert api["environment"]["MLOOP_JOBS_EMBEDDED_WORKER"] == "false"
    assert worker["command"][0] == "worker"
    assert api["image"] == worker["image"]  # one image, built once
    for service in (api, worker):
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        env = service["environment"]
        assert env["MLOOP_TRACKING_URI"] == "http://mlflow:5000"
        assert env["MLOOP_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/mloop" in env["MLOOP_DATABASE_URL"]
        assert env["MLOOP_RATE_LIMIT_URL"].startswith("redis://redis:6379/")


def test_mlflow_uses_postgres_and_serves_artifacts_from_minio(config):
    mlflow = config["services"]["mlflow"]
    args = " ".join(mlflow["command"])
    assert "--backend-store-uri=postgresql+psycopg://" in args and "@postgres:5432/mlflow" in args
    assert "--artifacts-destination=s3://mlflow/" in args and "--serve-artifacts" in args
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow:5000" in args  # allowed Host header of the other services' requests
    assert mlflow["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck_and_dependencies_wait_for_it(config):
    services = config["services"]
    awaited = {
        name: dep["condition"]
        for service in services.values()
        for name, dep in (service.get("depends_on") or {}).items()
    }
    for name in LONG_RUNNING - {"worker"}:
        assert services[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
    # The worker serves no HTTP: the image's HEALTHCHECK on /health must not mark it unhealthy.
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert awaited["postgres"] == awaited["mlflow"] == awaited["api"] == "service_healthy"
    assert set(awaited.values()) <= {"service_healthy", "service_completed_successfully"}
    for name in awaited:
        assert name in services, f"depends_on names an unknown service {name}"


def test_state_lives_in_named_volumes_and_ports_stay_on_loopback(config):
    named = set(config["volumes"])
    used = set()
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", ".")):
                used.add(source)
            elif source.startswith("."):
                assert (COMPOSE.parent / source).resolve().exists(), f"{name} mounts {source}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert used == named
    assert {"postgres-data", "minio-data", "prometheus-data", "grafana-data"} <= named


def test_the_monitoring_services_load_the_repositorys_configs(config):
    services = config["services"]
    mounts = {
        name: {v.split(":")[0]: v.split(":")[1] for v in s.get("volumes", [])}
        for name, s in services.items()
    }
    assert mounts["prometheus"]["../prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["prometheus"]["../prometheus/rules"] == "/etc/prometheus/rules"
    assert (
        mounts["alertmanager"]["../alertmanager/alertmanager.yml"]
        == "/etc/alertmanager/alertmanager.yml"
    )
    assert mounts["grafana"]["../grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards = yaml.safe_load(
        (COMPOSE.parents[1] / "grafana/provisioning/dashboards/mloop.yml").read_text()
    )
    assert (
        mounts["grafana"]["../grafana/dashboards"]
        == (dashboards["providers"][0]["options"]["path"])
    )


def test_env_example_documents_every_variable_the_compose_file_reads():
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}", text))
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used, "no variable found: the pattern is wrong"
    assert used == example, (sorted(used - example), sorted(example - used))
