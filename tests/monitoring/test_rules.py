"""Prometheus rules and Alertmanager config, checked by the real tools; /metrics by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import loopkit, modelkit

DEPLOY = Path(__file__).parents[2] / "deploy"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        loopkit.tool_missing("promtool is not installed: apt-get install -y prometheus")
    return path


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)


def test_alert_rule_unit_tests_pass():
    tests = sorted(str(p) for p in (DEPLOY / "prometheus" / "tests").glob("*.yml"))
    assert tests
    result = run(promtool(), "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_cover_every_alert_the_issue_names():
    import yaml

    names = {
        rule["alert"]
        for path in (DEPLOY / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    assert names == {
        "HighPredictionErrorRate", "HighPredictionLatency", "LowPredictionConfidence",
        "ModelNotResponding", "FeatureDriftDetected", "PredictionDriftDetected",
        "ModelQualityDegraded",
    }  # fmt: skip
    tested = "\n".join(p.read_text() for p in (DEPLOY / "prometheus" / "tests").glob("*.yml"))
    for name in names:
        assert f"alertname: {name}" in tested, f"{name} has no promtool unit test"


def test_rules_and_scrape_config_are_valid():
    rules = sorted(str(p) for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))
    result = run(promtool(), "check", "rules", *rules)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run(promtool(), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_routes_to_the_mloop_webhook():
    import yaml

    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert config["route"]["receiver"] == "mloop"
    assert receivers["mloop"]["webhook_configs"][0]["url"].endswith("/alerts/webhook")
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed: apt-get install -y prometheus-alertmanager")
    result = run(amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_passes_on_a_real_servers_output(tmp_path):
    tool = promtool()
    folder = tmp_path
    settings = modelkit.home_settings(folder / "home")
    loopkit.train_churn_pipeline(settings, folder)
    text = loopkit.busy_server_metrics(settings, loopkit.churn_rows(60))
    assert "feature_drift_score" in text and "model_quality" in text
    result = run(tool, "check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
