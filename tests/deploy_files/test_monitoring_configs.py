"""Prometheus, Alertmanager and Grafana configs: valid for their own tools, and every host in
them is a service of deploy/compose/compose.yaml."""

from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from mloop.serving.routes.alerts import alert_webhook, router
from tests.deploy_files.tools import COMPOSE, DEPLOY, run, tool

PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def promtool() -> str:
    return tool("promtool", "apt-get install -y prometheus")


def test_promtool_accepts_the_scrape_config_the_rules_and_their_unit_tests():
    result = run(promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # rules/*.yml resolved beside the config
    rules = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
    result = run(promtool(), "check", "rules", *rules)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*.yml"))
    result = run(promtool(), "test", "rules", *tests, cwd=PROMETHEUS / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config():
    amtool = tool("amtool", "apt-get install -y prometheus-alertmanager")
    result = run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_compose_services_mloop_and_node_exporter():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["mloop"] == ["api:8000"]
    assert targets["node"] == ["node-exporter:9100"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]
    names = set(services())
    for target in [*targets["mloop"], *targets["node"], *alertmanagers]:
        assert target.split(":")[0] in names, f"{target} is not a compose service"


def test_alertmanager_posts_to_mloops_webhook_route_on_the_api_service():
    (route,) = [r for r in router.routes if getattr(r, "endpoint", None) is alert_webhook]
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    url = urlsplit(receivers[config["route"]["receiver"]]["webhook_configs"][0]["url"])
    assert url.hostname == "api" and url.port == 8000
    assert url.path == route.path and "POST" in route.methods
    for sub in config["route"].get("routes", []):
        assert sub["receiver"] in receivers


def test_grafana_reads_the_prometheus_service():
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.hostname in services()
    assert url.port == 9090
