"""The model test suite mloop runs itself, on held-out data it rebuilds from the run's record.

The training run recorded the data file (path and sha256) and the effective config (split
fraction and seed), so the held-out split is re-derived exactly; a data file that is gone or
changed makes the gate fail with that reason instead of testing on other data. The checks are
the seed's model tests: output shape, probability range, determinism, missing-value handling,
and a single-row latency budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mloop.data.io import file_sha256, read_table
from mloop.errors import MloopError
from mloop.pipeline import dataset
from mloop.pipeline.config import config_from_dict
from mloop.registry.records import VersionDetails
from mloop.registry.resolve import load_model
from mloop.settings import Settings

SAMPLE_ROWS = 500


class HeldOutUnavailable(MloopError):
    """The held-out split cannot be rebuilt (no record, file gone or changed)."""

    http_status = 409
    exit_code = 4


@dataclass
class HeldOut:
    """The training split (drift reference) and the held-out split, as at training time."""

    data_path: str
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_test: pd.Series
    date_columns: list[str]


@dataclass(frozen=True)
class Check:
    """One check's outcome, with a sentence saying what was measured."""

    name: str
    passed: bool
    detail: str
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "detail": self.detail,
            "value": self.value,
        }


def held_out(details: VersionDetails) -> HeldOut:
    """Rebuild the run's train/test split; HeldOutUnavailable says why it cannot."""
    lineage = details.lineage
    path = lineage.get("mloop.data_path")
    recorded = lineage.get("mloop.data_sha256")
    config_text = lineage.get("mloop.config")
    ref = f"{details.name}/{details.version}"
    if not path or not recorded or not config_text:
        raise HeldOutUnavailable(
            f"the run of {ref} records no training data (mloop.data_path, mloop.data_sha256, "
            "mloop.config): it was not trained with `mloop train`, so there is no held-out split"
        )
    if not Path(path).is_file():
        raise HeldOutUnavailable(f"the training data of {ref} is gone: {path} does not exist")
    actual = file_sha256(path)
    if actual != recorded:
        raise HeldOutUnavailable(
            f"the training data of {ref} changed since training: {path} has sha256 "
            f"{actual[:12]}..., the run recorded {recorded[:12]}..."
        )
    config = config_from_dict(yaml.safe_load(config_text), source=f"{ref} run config")
    ds = dataset.prepare(read_table(path), config, source=path)
    X_train, X_test, _y_train, y_test = dataset.split(
        ds, config.preprocess.test_split, config.preprocess.random_state
    )
    return HeldOut(path, X_train, X_test, y_test, list(ds.spec.date))


def run_suite(
    model: Any,
    X: pd.DataFrame,
    *,
    latency_ms: float = 100.0,
    missing_rate: float = 0.1,
    latency_calls: int = 20,
) -> list[Check]:
    """Run the checks against a LoadedModel (`predict(frame) -> labels, probabilities`)."""
    X = X.head(SAMPLE_ROWS).reset_index(drop=True)
    checks: list[Check] = []
    try:
        labels, probabilities = model.predict(X)
    except Exception as exc:
        return [Check("output_shape", False, f"prediction failed: {type(exc).__name__}: {exc}")]
    labels = np.asarray(labels)
    shape_ok = labels.shape[0] == len(X) and (
        probabilities is None or np.asarray(probabilities).shape[0] == len(X)
    )
    checks.append(
        Check("output_shape", shape_ok, f"{labels.shape[0]} predictions for {len(X)} rows")
    )
    if probabilities is None:
        checks.append(Check("probability_range", True, "no probabilities (not a classifier)"))
    else:
        p = np.asarray(probabilities, dtype=float)
        in_range = bool(np.all((p >= 0) & (p <= 1)))
        sums = np.abs(p.sum(axis=1) - 1.0).max() if p.ndim == 2 else 0.0
        checks.append(
            Check(
                "probability_range",
                in_range and sums < 1e-6,
                f"probabilities in [{p.min():.4f}, {p.max():.4f}], "
                f"row sums off by at most {sums:.2e}",
            )
        )
    again, probabilities_again = model.predict(X)
    same = np.array_equal(np.asarray(again), labels) and (
        probabilities is None or np.allclose(probabilities_again, probabilities, rtol=0, atol=0)
    )
    checks.append(
        Check(
            "determinism",
            bool(same),
            "two calls on the same rows gave " + ("the same" if same else "different") + " outputs",
        )
    )
    checks.append(_missing_values(model, X, missing_rate))
    checks.append(_latency(model, X, latency_ms, latency_calls))
    return checks


def _missing_values(model: Any, X: pd.DataFrame, rate: float) -> Check:
    rng = np.random.default_rng(0)
    holes = X.copy()
    for column in holes.columns:
        mask = rng.random(len(holes)) < rate
        if holes[column].dtype.kind in "iub":
            holes[column] = holes[column].astype("float64")
        holes.loc[mask, column] = np.nan
    missing = int(holes.isna().sum().sum())
    try:
        labels, _ = model.predict(holes)
    except Exception as exc:
        return Check(
            "missing_values",
            False,
            f"{missing} missing cells made the model fail: {type(exc).__name__}: {exc}",
        )
    ok = len(labels) == len(holes)
    return Check("missing_values", ok, f"{missing} missing cells ({rate:.0%} per column) handled")


def _latency(model: Any, X: pd.DataFrame, budget_ms: float, calls: int) -> Check:
    row = X.head(1)
    model.predict(row)  # warm-up
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    median = float(np.median(times))
    return Check(
        "latency",
        median <= budget_ms,
        f"single-row median {median:.2f} ms over {calls} calls (budget {budget_ms:g} ms)",
        value=median,
    )


def validate_version(settings: Settings, details: VersionDetails, **budget: Any) -> list[Check]:
    """Rebuild the held-out split of a version and run the suite on its registered model."""
    data = held_out(details)
    model = load_model(f"models:/{details.name}/{details.version}", settings)
    return run_suite(model, data.X_test, **budget)
