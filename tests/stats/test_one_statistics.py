"""One set of drift statistics: the live monitor, `mloop drift` and the governance drift gate.

The same reference and current tables go through the three real paths (the live monitor's
thread counting served batches, the CLI writing its JSON report, the promotion gate's check),
and every per-column number and verdict must be the same. A path with its own formula (binning,
empty-bin floor, missing-value rule) gives other numbers and fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data.io import write_table
from mloop.governance.drift import psi_drift
from mloop.governance.gates import drift_gate
from mloop.monitoring.live import LiveDriftMonitor
from mloop.monitoring.prediction_log import PredictionBatch
from mloop.stats.profile import ReferenceProfile

COUNTED = ("psi", "jensen_shannon", "chi_squared")  # on counts: defined on every path
SHIFTED = {"income", "plan", "calls"}
STEADY = {"age", "region"}


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """3000 reference rows and 1200 current rows; three columns move, two stay."""
    rng = np.random.default_rng(13)

    def make(n: int, moved: bool) -> pd.DataFrame:
        age = rng.normal(40, 10, n)
        age[rng.random(n) < 0.03] = np.nan  # missing on both sides
        calls_p = [0.1, 0.2, 0.3, 0.2, 0.1, 0.1] if moved else [0.3, 0.3, 0.2, 0.1, 0.05, 0.05]
        return pd.DataFrame(
            {
                "income": rng.lognormal(10.4 if moved else 10.0, 0.5, n),
                "age": age,
                "calls": rng.choice(6, n, p=calls_p).astype(float),  # one bin per value
                "plan": rng.choice(
                    ["basic", "plus", "pro"], n, p=[0.2, 0.3, 0.5] if moved else [0.5, 0.3, 0.2]
                ),
                "region": rng.choice(["north", "south", "east", "west"], n),
            }
        )

    return make(3000, False), make(1200, True)


def live_columns(
    reference: pd.DataFrame, current: pd.DataFrame, method: str, threshold: float
) -> dict:
    """What the live monitor reports after counting `current` as served batches of 100 rows."""
    profile = ReferenceProfile.from_frame(reference)
    monitor = LiveDriftMonitor(
        CollectorRegistry(), lambda _n, _v: (profile, None), method=method,
        threshold=threshold, min_rows=1,
    )  # fmt: skip
    monitor.start()
    try:
        for start in range(0, len(current), 100):
            frame = current.iloc[start : start + 100].reset_index(drop=True)
            n = len(frame)
            batch = PredictionBatch("m", "1", datetime.now(UTC), [str(i) for i in range(n)],
                                    frame.to_dict("records"), [0] * n, [None] * n, 1.0)  # fmt: skip
            monitor(batch, frame)
        monitor.flush()
        (report,) = monitor.report()
    finally:
        monitor.stop()
    assert report["status"] == "ok" and report["rows"] == len(current)
    return report


def cli_report(tmp_path, reference, current, method: str, threshold: float) -> dict:
    """The JSON `mloop drift` writes for the two tables (as Parquet files)."""
    ref = write_table(reference, tmp_path / "reference.parquet")
    cur = write_table(current, tmp_path / "current.parquet")
    out = tmp_path / f"{method}.json"
    argv = ["drift", str(ref), str(cur), "--method", method, "--threshold", str(threshold),
            "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def assert_same_column(name: str, live: dict, batch: dict) -> None:
    assert live["statistic"] == batch["statistic"], name
    assert live["value"] == pytest.approx(batch["value"], rel=1e-9), name
    assert live["drift_detected"] == batch["drift_detected"], name
    for statistic in COUNTED:
        assert live["statistics"][statistic] == pytest.approx(
            batch["statistics"][statistic], rel=1e-9, abs=1e-300
        ), (name, statistic)
    assert live["missing_rate"] == pytest.approx(batch["missing_rate"]), name


@pytest.mark.parametrize(
    "method,threshold", [("psi", 0.1), ("jensen_shannon", 0.05), ("chi_squared", 0.001)]
)
def test_live_monitor_and_mloop_drift_give_the_same_numbers(tables, tmp_path, method, threshold):
    reference, current = tables
    live = live_columns(reference, current, method, threshold)
    batch = cli_report(tmp_path, reference, current, method, threshold)
    assert list(live["columns"]) == list(batch["columns"]) == list(reference.columns)
    for name in reference.columns:
        assert live["columns"][name]["statistic"] == method
        assert_same_column(name, live["columns"][name], batch["columns"][name])
    drifted = {name for name, column in batch["columns"].items() if column["drift_detected"]}
    assert drifted == SHIFTED  # the verdicts are not all alike: the comparison means something
    assert live["dataset_drift"] is batch["dataset_drift"] is True
    assert live["share_of_drifted_columns"] == batch["share_of_drifted_columns"] == 0.6


def test_governance_drift_gate_gives_the_same_psi_and_verdicts(tables, tmp_path):
    reference, current = tables
    max_psi = 0.1
    live = live_columns(reference, current, "psi", max_psi)["columns"]
    batch = cli_report(tmp_path, reference, current, "psi", max_psi)["columns"]
    gate = psi_drift(reference, current, max_psi)
    for name in reference.columns:
        column = gate.column(name).to_dict()
        assert column["value"] == pytest.approx(batch[name]["value"], rel=1e-9), name
        assert column["value"] == pytest.approx(live[name]["value"], rel=1e-9), name
        assert column["drift_detected"] == batch[name]["drift_detected"], name
        assert column["drift_detected"] == live[name]["drift_detected"], name
    verdict = drift_gate(reference, current, max_psi, "current.parquet")
    worst = max(batch, key=lambda name: batch[name]["value"])
    assert not verdict.passed
    assert f"max PSI {batch[worst]['value']:.3f} ({worst})" in verdict.detail
    assert verdict.detail.endswith(f"at or over the limit: {', '.join(sorted(SHIFTED))}")
    calm = drift_gate(reference, reference.sample(1200, random_state=1), 0.25, "a sample")
    assert calm.passed, calm.detail


def test_live_monitor_refuses_a_statistic_that_needs_raw_samples():
    from mloop.errors import ValidationError

    for method in ("ks", "z"):
        with pytest.raises(ValidationError, match="needs raw samples"):
            LiveDriftMonitor(CollectorRegistry(), lambda _n, _v: (None, None), method=method)
