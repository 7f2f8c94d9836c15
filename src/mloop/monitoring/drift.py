"""Drift verdicts: per-feature statistics, the chosen test, and the dataset-level verdict.

Two entry points give the same `DriftResult`:

- `compare(profile, window)`: a reference profile against counts on its bins (the live
  path: no raw rows needed, works on merged counts from many workers);
- `detect_drift(reference_df, current_df)`: two raw samples (the batch path behind
  `mloop drift` and `POST /monitor/drift`), exact and following Evidently 0.7's defaults.

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
from mloop.monitoring import stats
from mloop.monitoring.counts import FeatureCounts, WindowCounts
from mloop.monitoring.features import CATEGORICAL
from mloop.monitoring.profile import CategoricalProfile, FeatureProfile, ReferenceProfile

AUTO = "auto"
PSI, JS, WASSERSTEIN, CHI2, KS, Z = (
    "psi", "jensen_shannon", "wasserstein_normed", "chi_squared", "ks", "z",
)  # fmt: skip
THRESHOLDS = {PSI: 0.1, JS: 0.1, WASSERSTEIN: 0.1, CHI2: 0.05, KS: 0.05, Z: 0.05}
P_VALUES = frozenset({CHI2, KS, Z})
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


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# -- the live path: profile vs counts --------------------------------------------------------


def compare(
    profile: ReferenceProfile,
    current: WindowCounts,
    *,
    method: str = AUTO,
    threshold: float | None = None,
    drift_share: float = DRIFT_SHARE,
) -> DriftResult:
    """Drift of a window (counts on the profile's bins) against the reference profile.

    Computes PSI, Jensen-Shannon and the chi-squared p-value for every feature and the
    normalised Wasserstein distance for numeric ones (from the bins, never below the mean
    shift, which bounds it from below); `method` picks the statistic that decides.
    """
    method = normalize_method(method)
    if method in (KS, Z):
        raise ValidationError(f"{method} needs raw samples; on counts use psi, jensen_shannon, "
                              "wasserstein_normed or chi_squared")  # fmt: skip
    columns = []
    for name, prof in profile.features.items():
        counts = current.features.get(name)
        if counts is None:
            raise ValidationError(f"window has no counts for feature {name!r}")
        columns.append(_compare_one(name, prof, counts, method, threshold))
    prediction = probability = None
    if profile.predictions is not None and current.predictions is not None:
        prediction = _compare_one("prediction", profile.predictions, current.predictions,
                                  method, threshold)  # fmt: skip
    if profile.probabilities is not None and current.probabilities is not None:
        probability = _compare_one("probability", profile.probabilities, current.probabilities,
                                   method, threshold)  # fmt: skip
    return DriftResult(
        columns, profile.rows, current.rows, method, drift_share, prediction, probability
    )


def _compare_one(
    name: str, prof: FeatureProfile, cur: FeatureCounts, method: str, threshold: float | None
) -> FeatureDrift:
    ref = prof.reference_counts()
    categorical = isinstance(prof, CategoricalProfile)
    values: dict[str, float] = {}
    if cur.present and ref.present:
        values[PSI] = stats.psi(ref.counts, cur.counts)
        values[JS] = stats.jensen_shannon(ref.counts, cur.counts)
        values[CHI2] = stats.chi_squared_p(ref.counts, cur.counts)
        if not categorical:
            distance = stats.binned_wasserstein(np.asarray(prof.edges), ref.counts, cur.counts)
            distance = max(distance, abs(cur.mean - prof.mean))
            values[WASSERSTEIN] = stats.normed(distance, prof.std)
    statistic = _choose_on_counts(method, categorical, prof.count)
    limit = THRESHOLDS[statistic] if threshold is None else threshold
    value = values.get(statistic)
    result = FeatureDrift(
        column=name,
        kind=prof.kind,
        statistic=statistic,
        value=value,
        threshold=limit,
        drift_detected=value is not None and drifted(statistic, value, limit),
        statistics=values,
        missing_rate={
            "reference": rate(ref.missing, ref.rows),
            "current": rate(cur.missing, cur.rows),
        },
        histogram={
            "labels": prof.bin_labels(),
            "reference": stats.shares(ref.counts).tolist(),
            "current": stats.shares(cur.counts).tolist(),
        },
    )
    if categorical:
        result.unseen = cur.outside
    else:
        result.histogram["edges"] = list(prof.edges)
        result.out_of_range = cur.outside
        result.mean = {"reference": prof.mean, "current": cur.mean}
    return result


def _choose_on_counts(method: str, categorical: bool, reference_rows: int) -> str:
    if method == WASSERSTEIN and categorical:
        method = AUTO  # not defined for categories: use the categorical default
    if method != AUTO:
        return method
    if reference_rows <= SMALL_REFERENCE:
        return CHI2
    return JS if categorical else WASSERSTEIN


# -- the batch path: raw samples -------------------------------------------------------------


def detect_drift(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    method: str = AUTO,
    threshold: float | None = None,
    drift_share: float = DRIFT_SHARE,
    kinds: dict[str, str] | None = None,
) -> DriftResult:
    """Drift of `current` against `reference` (two DataFrames), column by column.

    Exact statistics on the raw values, with Evidently 0.7's default test per column; see
    `mloop.monitoring.batch` for the details. Bad input is a ValidationError naming it.
    """
    from mloop.monitoring.batch import detect_drift as run

    return run(
        reference,
        current,
        columns=columns,
        method=method,
        threshold=threshold,
        drift_share=drift_share,
        kinds=kinds,
    )


__all__ = [
    "CATEGORICAL",
    "DriftResult",
    "FeatureDrift",
    "compare",
    "detect_drift",
    "normalize_method",
]
