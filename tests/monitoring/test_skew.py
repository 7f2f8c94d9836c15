"""Train/serve skew: the training profile (on features.yaml's bins) against the served rows,
in the CLI (`mloop skew`) and as the live monitor's `mloop_feature_skew` gauge."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime

import mlflow
import numpy as np
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.monitoring.live import LiveDriftMonitor
from mloop.monitoring.prediction_log import PredictionBatch, PredictionLogWriter
from mloop.registry.profile_store import PROFILE_ARTIFACT
from mloop.stats.profile import ReferenceProfile
from mloop.store import open_database
from tests.support import modelkit
from tests.support.contractkit import CONTRACT

runner = CliRunner()


def _profile(frame):
    return ReferenceProfile.from_frame(frame, contract=CONTRACT)


def test_the_profile_takes_the_contracts_kinds_ranges_and_categories():
    frame, _ = modelkit.make_frame()
    profile = _profile(frame)
    plan = profile.features["plan"]
    assert plan.categories == ["basic", "plus", "pro"]  # declared order, not frequency
    assert sum(plan.counts) == len(frame)
    tenure = profile.features["tenure"]
    assert tenure.edges[0] == 0.0 and tenure.edges[-1] == 72.0
    # a value beyond the training max but inside the declared range is not out of range
    counts = profile.counts(frame.assign(tenure=71.99, plan="gold"))
    assert counts.features["tenure"].outside == 0
    assert counts.features["plan"].outside == len(frame)
    plain = ReferenceProfile.from_frame(frame)
    assert plain.features["tenure"].edges[-1] < 72.0


def _log(settings, frame, name: str, version: str, rows) -> None:
    writer = PredictionLogWriter(open_database(settings))
    with writer:
        writer.submit(
            PredictionBatch(
                model_name=name,
                model_version=version,
                created_at=datetime.now(UTC),
                ids=[f"p{i}" for i in range(len(rows))],
                rows=rows,
                predictions=[0] * len(rows),
                probabilities=[0.5] * len(rows),
                latency_ms=1.0,
                columns=tuple(frame.columns),
            )
        )


def test_mloop_skew_prints_a_table_and_writes_html(mloop_home, tmp_path):
    trained = modelkit.train_and_register(mloop_home, name="skewed")
    run_id = mlflow.MlflowClient().get_model_version("skewed", "1").run_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(run_id=run_id):
            mlflow.log_text(_profile(trained.frame).to_json(), PROFILE_ARTIFACT)
    served = trained.frame.head(200).copy()
    served["charges"] = served["charges"] + 200.0  # every served row far off training
    _log(mloop_home, served, "skewed", "1", modelkit.json_rows(served))
    out = tmp_path / "skew.html"
    result = runner.invoke(app, ["skew", "skewed@production", "--out", str(out), "--json",
                                 str(tmp_path / "skew.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train/serve skew of skewed v1 (200 rows)" in " ".join(result.output.split())
    report = json.loads((tmp_path / "skew.json").read_text())
    drifted = {n: c["drift_detected"] for n, c in report["columns"].items()}
    assert drifted["charges"] is True and drifted["plan"] is False
    assert out.read_text().startswith("<!DOCTYPE html>") or "<html" in out.read_text()
    # a version nothing was served for: a clear 404-style error
    missing = runner.invoke(app, ["skew", "churn-none@production"])
    assert missing.exit_code != 0


def test_the_live_monitor_sets_the_skew_gauge(tmp_path):
    frame, _ = modelkit.make_frame()
    profile = _profile(frame)
    registry = CollectorRegistry()
    monitor = LiveDriftMonitor(
        registry, lambda name, version: (profile, None), min_rows=10, interval=3600
    )
    served = frame.assign(charges=frame["charges"] + 500.0)
    batch = PredictionBatch(
        model_name="churn",
        model_version="1",
        created_at=datetime.now(UTC),
        ids=[str(i) for i in range(len(served))],
        rows=modelkit.json_rows(served),
        predictions=[0] * len(served),
        probabilities=[None] * len(served),
        latency_ms=1.0,
        columns=tuple(served.columns),
    )
    monitor.start()
    try:
        monitor(batch, served)
        monitor.flush()
        monitor.report()
    finally:
        monitor.stop()
    skew = {
        s.labels["feature"]: s.value
        for m in registry.collect()
        if m.name == "mloop_feature_skew"
        for s in m.samples
        if s.labels["model"] == "churn" and s.labels["version"] == "1"
    }
    assert skew["charges"] > 0.5 > skew["plan"]
    assert np.isclose(skew["plan"], 0.0, atol=1e-6)
