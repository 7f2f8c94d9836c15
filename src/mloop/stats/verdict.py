"""Drift verdicts: statistic names and thresholds, per-column and dataset-level verdicts.

Two entry points give the same `DriftResult`:

- `mloop.stats.binned.compare(profile, window)`: a reference profile against counts on its
  bins (the live path: no raw rows needed, works on merged counts from many workers);
- `mloop.stats.samples.detect_drift(reference_df, current_df)`: two raw samples (the batch
  path behind `mloop drift`, the governance drift gate), exact and following Evidently 0.7.

Test choice (`method="auto"`, documented in docs/drift.md): when the reference has at most
1000 rows, p-value tests at p < 0.05 (batch: KS for numeric, chi-squared or Z for few
values; live: chi-squared on the bins); above that, effect sizes at 0.1 (normalised
Wasserstein for numeric, Jensen-Shannon for categorical). A dataset drifts when at least
`drift_share` (0.5) of its columns drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.errors import ValidationError
from mloop.stats import measures

AUTO = "auto"
PSI, JS, WASSERSTEIN, CHI2, KS, Z = (
    "psi", "jensen_shannon", "wasserstein_normed", "chi_squared", "ks", "z",
)  # fmt: skip
THRESHOLDS = {PSI: 0.1, JS: 0.1, WASSERSTEIN: 0.1, CHI2: 0.05, KS: 0.05, Z: 0.05}
P_VALUES = frozenset({CHI2, KS, Z})
ON_SAMPLES = frozenset({KS, Z})  # need raw samples: not on counts (the live path)
ALIASES = {"wasserstein": WASSERSTEIN, "js": JS, "chi2": CHI2, "chisquare": CHI2}
METHODS = (AUTO, *THRESHOLDS)
SMALL_REFERENCE = 1000  # Evidently: p-value tests up to this many reference rows
DRIFT_SHARE = 0.5


def normalize_method(method: str) -> str:
    """A method name or alias -> its canonical name; unknown names are a ValidationError."""
    name = ALIASES.get(method, method)
    if name not in METHODS:
        raise ValidationError(
            f"unknown drift method {method!r}", hint=f"use one of {', '.join(METHODS)}"
        )
    return name


def drifted(statistic: str, value: float, threshold: float) -> bool:
    """p-values drift below the threshold (KS: at or below, as Evidently); distances at or above."""
    if statistic == KS:
        return value <= threshold
    if statistic in P_VALUES:
        return value < threshold
    return value >= threshold


@dataclass
class FeatureDrift:
    """One column's verdict, every statistic computed for it, and the histograms compared."""

    column: str
    kind: str
    statistic: str
    value: float | None
    threshold: float
    drift_detected: bool
    statistics: dict[str, float] = field(default_factory=dict)
    missing_rate: dict[str, float] = field(default_factory=dict)  # reference, current
    out_of_range: int = 0
    unseen: int = 0
    mean: dict[str, float] = field(default_factory=dict)  # numeric: reference, current
    histogram: dict[str, list] = field(default_factory=dict)  # labels, reference, current

    @property
    def score(self) -> float | None:
        """Grows with drift: the distance itself, or 1 - p for a p-value test."""
        if self.value is None:
            return None
        return 1.0 - self.value if self.statistic in P_VALUES else self.value

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "column": self.column,
                "type": self.kind,
                "statistic": self.statistic,
                "value": self.value,
                "threshold": self.threshold,
                "drift_detected": self.drift_detected,
                "score": self.score,
                "statistics": self.statistics,
                "missing_rate": self.missing_rate,
                "out_of_range": self.out_of_range,
                "unseen": self.unseen,
                "mean": self.mean,
                "histogram": self.histogram,
            }
        )


@dataclass
class DriftResult:
    """Per-column verdicts, the dataset verdict, and prediction/probability drift."""

    columns: list[FeatureDrift]
    reference_rows: int
    current_rows: int
    method: str = AUTO
    drift_share: float = DRIFT_SHARE
    prediction: FeatureDrift | None = None
    probability: FeatureDrift | None = None
    # Columns left out of the test, with the reason (e.g. identifiers).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def number_of_drifted_columns(self) -> int:
        return sum(c.drift_detected for c in self.columns)

    @property
    def share_of_drifted_columns(self) -> float:
        return self.number_of_drifted_columns / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Evidently's rule: drifted columns / columns >= drift_share."""
        return bool(self.columns) and self.share_of_drifted_columns >= self.drift_share

    @property
    def prediction_drift_score(self) -> float | None:
        return None if self.prediction is None else self.prediction.score

    def column(self, name: str) -> FeatureDrift:
        for item in self.columns:
            if item.column == name:
                return item
        raise KeyError(name)

    def scores(self) -> dict[str, float]:
        """Drift score per column (for gauges); columns without current data are left out."""
        return {c.column: c.score for c in self.columns if c.score is not None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of `mloop drift --json` and `GET/POST /monitor/drift`."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "number_of_columns": len(self.columns),
            "number_of_drifted_columns": self.number_of_drifted_columns,
            "share_of_drifted_columns": self.share_of_drifted_columns,
            "method": self.method,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": {c.column: c.to_dict() for c in self.columns},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "probability": None if self.probability is None else self.probability.to_dict(),
            "skipped": dict(self.skipped),
        }


def _clean(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the dict is strict JSON."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def binned_statistics(ref_counts: np.ndarray, cur_counts: np.ndarray) -> dict[str, float]:
    """PSI, Jensen-Shannon and the chi-squared p-value of counts on the same bins."""
    return {
        PSI: measures.psi(ref_counts, cur_counts),
        JS: measures.jensen_shannon(ref_counts, cur_counts),
        CHI2: measures.chi_squared_p(ref_counts, cur_counts),
    }


def decide(
    result: FeatureDrift, values: dict[str, float], statistic: str, threshold: float | None
) -> FeatureDrift:
    """Fill `result` with the statistics computed and the verdict of the one that decides."""
    limit = THRESHOLDS[statistic] if threshold is None else threshold
    result.statistics = values
    result.statistic = statistic
    result.value = values[statistic]
    result.threshold = limit
    result.drift_detected = drifted(statistic, result.value, limit)
    return result


def no_data(result: FeatureDrift, method: str, threshold, one_sided: bool) -> FeatureDrift:
    """A side with no values: drift when only one side is empty (a column appeared or vanished)."""
    result.statistic = JS if method == AUTO else method
    result.threshold = THRESHOLDS[result.statistic] if threshold is None else threshold
    result.drift_detected = one_sided
    return result


def histogram(labels: list[str], ref: np.ndarray, cur: np.ndarray, edges=None) -> dict[str, list]:
    """The histograms a report draws: both sides' shares on the reference's bins."""
    shown = {
        "labels": labels,
        "reference": measures.shares(ref).tolist(),
        "current": measures.shares(cur).tolist(),
    }
    if edges is not None:
        shown["edges"] = list(edges)
    return shown


def rate(part: int, whole: int) -> float:
    """part / whole, 0 for an empty whole (missing rates of empty columns)."""
    return part / whole if whole else 0.0


__all__ = [
    "AUTO",
    "DRIFT_SHARE",
    "METHODS",
    "ON_SAMPLES",
    "P_VALUES",
    "THRESHOLDS",
    "DriftResult",
    "FeatureDrift",
    "drifted",
    "normalize_method",
]
