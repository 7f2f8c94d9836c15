"""Grafana provisioning and dashboard: every PromQL query (dashboard and alert rules) only
uses metric names a real mloop server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support import loopkit, modelkit

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mloop.json"
# Series Prometheus makes itself and node-exporter's (the live check with several workers is
# tests/deploy_files/test_live_metrics.py).
FROM_PROMETHEUS = {
    "up", "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
}  # fmt: skip
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, labels, keywords and strings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", match.group(0)):
            continue
        names.add(match.group(0))
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_queries() -> list[str]:
    return [
        rule["expr"]
        for path in (DEPLOY / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    folder = tmp_path_factory.mktemp("dash")
    settings = modelkit.home_settings(folder / "home")
    loopkit.train_churn_pipeline(settings, folder)
    text = loopkit.busy_server_metrics(settings, loopkit.churn_rows(60))
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
    return names


def test_the_extractor_finds_metric_names_only():
    expr = (
        "histogram_quantile(0.95, sum by (le, model_version) "
        '(rate(model_prediction_latency_seconds_bucket{job="mloop"}[5m]))) > 0.5 '
        "and on (instance) up == 1"
    )
    assert metric_names(expr) == {"model_prediction_latency_seconds_bucket", "up"}


def test_every_dashboard_and_rule_query_uses_exported_metrics(exported):
    queries = dashboard_queries() + rule_queries()
    assert len(queries) > 15
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported - FROM_PROMETHEUS
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not exported by the server"


def test_the_dashboard_has_the_panels_users_expect():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Prediction rate", "Prediction latency (p95)", "Error rate",
                   "Drift per feature", "Quality over time (ground truth)",
                   "Traffic per variant"):  # fmt: skip
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in dashboard["panels"])


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard_folder():
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    source = sources["datasources"][0]
    assert source["type"] == "prometheus" and source["url"].startswith("http://")
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0]["current"]["value"] == source["uid"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/mloop.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    assert providers["providers"][0]["options"]["path"]
