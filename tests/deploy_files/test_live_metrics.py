"""Every metric the Grafana dashboards and the Prometheus rules query is one that a real
`mloop serve --workers 2` (as in deploy/compose) exports on /metrics after predictions,
refusals and feedback. A renamed metric breaks a panel or silences an alert without this."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_files.tools import DEPLOY
from tests.monitoring.test_dashboards import metric_names
from tests.support import loopkit, modelkit
from tests.support.env import clean_environ
from tests.support.waiting import wait_for

# Series that come from elsewhere than mloop's /metrics, by name (no prefix wildcards).
FROM_PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
FROM_NODE_EXPORTER = {
    "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_load1",
}  # fmt: skip
# process_* (one series per worker, a `pid` label) and mloop_build_info are mloop's own: checked.
NOT_FROM_MLOOP = FROM_PROMETHEUS | FROM_NODE_EXPORTER


def dashboard_queries() -> dict[str, str]:
    """Every panel query of every dashboard JSON, keyed by where it is."""
    out = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out[f"{path.name}: {panel['title']} {target['refId']}"] = target["expr"]
    return out


def rules() -> list[dict]:
    return [
        rule
        for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def queries() -> dict[str, str]:
    out = dashboard_queries()
    for rule in rules():
        out[f"rule {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    """Sample names on /metrics of `mloop serve --workers 2` after real traffic and feedback."""
    folder = tmp_path_factory.mktemp("live-metrics")
    settings = modelkit.home_settings(folder / "home")
    loopkit.train_churn_pipeline(settings, folder)
    port = loopkit.free_port()
    env = clean_environ(
        MLOOP_HOME=str(settings.home),
        MLOOP_DRIFT_MIN_ROWS="10",
        MLOOP_DRIFT_INTERVAL_SECONDS="0.2",
        GIT_PYTHON_REFRESH="quiet",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `mloop serve` makes its own, as in a container
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--workers", "2"]
    command += ["--log-level", "warning"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    rows = loopkit.churn_rows(60)

    def ready() -> bool:
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        try:
            return httpx.get(f"{url}/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "mloop serve --workers 2 ready", timeout=180, every=0.2)
        workers: set[str] = set()
        for _ in range(400):  # a new connection per round lets either worker take it
            with httpx.Client(base_url=url, timeout=60) as http:  # one worker per connection
                answer = http.post("/predict", json={"features": rows[0]})
                worker = answer.headers.get("x-mloop-worker")
                if answer.status_code != 200 or worker in workers:
                    continue  # still loading, or a worker that has had its traffic already
                workers.add(worker)
                answer = http.post("/predict/batch", json={"instances": rows})
                assert answer.headers["x-mloop-worker"] == worker, "the connection moved"
                ids = [p["prediction_id"] for p in answer.json()["predictions"]]
                assert http.post("/predict", json={"features": {"nope": 1}}).status_code == 422
                labels = [{"prediction_id": i, "actual": n % 2} for n, i in enumerate(ids)]
                assert http.post("/feedback", json={"feedback": labels}).status_code < 300
                http.get("/monitor/drift")
            if len(workers) == 2:
                break
        assert len(workers) == 2, f"only workers {workers} answered"

        def scraped() -> str | None:
            text = httpx.get(f"{url}/metrics", timeout=30).text
            live = "feature_drift_score{" in text and "model_quality{" in text
            return text if live else None

        text = wait_for(scraped, "drift and quality gauges on /metrics", timeout=120, every=0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_queries_are_found_in_every_dashboard_and_rule_file():
    found = queries()
    assert len(found) > 20, found
    assert any(name.startswith("rule ") for name in found)
    for where, expr in found.items():
        assert metric_names(expr), f"{where}: no metric name in {expr!r}"


def test_every_queried_metric_is_exported_by_a_live_multi_worker_server(exported):
    recorded = {rule["record"] for rule in rules() if "record" in rule}  # Prometheus makes these
    unknown = {}
    for where, expr in queries().items():
        missing = metric_names(expr) - exported - recorded - NOT_FROM_MLOOP
        if missing:
            unknown[where] = sorted(missing)
    assert not unknown, f"queried but not on a live /metrics: {unknown}"


def test_the_exceptions_are_not_mloop_names(exported):
    """An exception list that hides one of mloop's own metrics would let a rename through."""
    mloops = ("model_", "mloop_", "feature_", "process_")
    assert not {n for n in NOT_FROM_MLOOP if n.startswith(mloops)}
    assert "model_predictions_total" in exported  # the scrape really is mloop's
