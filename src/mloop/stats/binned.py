"""The live path: drift of counts on a reference profile's bins against the profile.

No raw rows: the window's counts (merged from many batches, workers or replicas) are compared
with the reference counts on the same bins. PSI, Jensen-Shannon and the chi-squared p-value
for every feature, the binned normalised Wasserstein distance for numeric ones (see
docs/drift.md); the verdict rules are `mloop.stats.verdict`'s.
"""

from __future__ import annotations

import numpy as np

from mloop.errors import ValidationError
from mloop.stats import measures as stats
from mloop.stats.columns import CategoricalProfile, FeatureProfile
from mloop.stats.counts import FeatureCounts, WindowCounts
from mloop.stats.profile import ReferenceProfile
from mloop.stats.verdict import (
    AUTO,
    CHI2,
    DRIFT_SHARE,
    JS,
    ON_SAMPLES,
    PSI,
    SMALL_REFERENCE,
    THRESHOLDS,
    WASSERSTEIN,
    DriftResult,
    FeatureDrift,
    drifted,
    normalize_method,
    rate,
)


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
    if method in ON_SAMPLES:
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
