"""The batch path: drift of two raw tables, exact statistics, Evidently 0.7's test per column.

Per column, missing and infinite values are dropped first (and reported as missing rates),
then, with n = reference rows left and u = distinct values in both samples together:

| kind        | n <= 1000                              | n > 1000                         |
|-------------|----------------------------------------|----------------------------------|
| numeric     | u <= 2: Z-test; u <= 5: chi-squared;   | u <= 5: Jensen-Shannon on value  |
|             | else KS (drift when p <= 0.05)         | counts; else Wasserstein / std   |
| categorical | u <= 2: Z-test; else chi-squared       | Jensen-Shannon on value counts   |

p-value tests drift below 0.05, distances at or above 0.1. Wasserstein is exact (merge of the
two sorted samples); Jensen-Shannon is scipy's distance (natural log) on value shares. On
top, every column gets PSI, Jensen-Shannon and chi-squared on the reference's quantile bins
(or top categories), which are also the histograms drawn in the HTML report.

Memory: one column at a time, a few arrays of its length; nothing else is copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from mloop.errors import ValidationError
from mloop.stats import measures as stats
from mloop.stats.columns import CategoricalProfile, NumericProfile, edge_levels
from mloop.stats.kinds import (
    CATEGORICAL,
    KINDS,
    categorical_values,
    infer_kind,
    looks_like_id,
    numeric_values,
)
from mloop.stats.verdict import (
    AUTO,
    CHI2,
    DRIFT_SHARE,
    JS,
    KS,
    PSI,
    WASSERSTEIN,
    DriftResult,
    FeatureDrift,
    Z,
    normalize_method,
    rate,
)
from mloop.stats.verdict import binned_statistics as _binned
from mloop.stats.verdict import decide as _decide
from mloop.stats.verdict import histogram as _histogram
from mloop.stats.verdict import no_data as _no_data

FEW_VALUES = 5  # Evidently: a numeric column with this many distinct values or fewer is counted


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    method: str = AUTO,
    threshold: float | None = None,
    drift_share: float = DRIFT_SHARE,
    kinds: dict[str, str] | None = None,
    on_column: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> DriftResult:
    """Drift of `current` against `reference`, column by column (see the module docstring)."""
    method = normalize_method(method)
    names = _check_frames(reference, current, columns)
    kinds = dict(kinds or {})
    skipped = {}
    if columns is None:  # the user did not choose: leave identifiers out, and say so
        skipped = {
            n: "every value is distinct (an identifier)"
            for n in names
            if n not in kinds and looks_like_id(reference[n])
        }
        names = [n for n in names if n not in skipped]
    for name in names:
        if kinds.get(name, infer_kind(reference[name])) not in KINDS:
            raise ValidationError(f"unknown kind {kinds[name]!r} for column {name!r}")

    def one(name: str) -> FeatureDrift:
        kind = kinds.get(name) or infer_kind(reference[name])
        if kind == CATEGORICAL:
            result = _categorical(name, reference[name], current[name], method, threshold)
        else:
            result = _numeric(name, kind, reference[name], current[name], method, threshold)
        if on_column is not None:
            on_column(name)
        return result

    # numpy's sorts and ufuncs and Arrow's counting release the GIL: columns run in parallel,
    # holding only a few arrays of one column each.
    workers = max(1, min(workers or os.cpu_count() or 1, len(names)))
    if workers == 1:
        results = [one(name) for name in names]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="mloop-drift") as pool:
            results = list(pool.map(one, names))
    return DriftResult(results, len(reference), len(current), method, drift_share, skipped=skipped)


def _check_frames(reference: object, current: object, columns: list[str] | None) -> list[str]:
    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError(f"{label} data must be a table, got {type(frame).__name__}")
        if frame.empty:
            raise ValidationError(f"{label} data has no rows")
    names = [str(c) for c in (columns or list(reference.columns))]
    if not names:
        raise ValidationError("no columns to compare")
    for label, frame in (("reference", reference), ("current", current)):
        absent = [c for c in names if c not in frame.columns]
        if absent:
            raise ValidationError(
                f"{label} data has no column {', '.join(map(repr, absent[:5]))}"
                + (f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""),
                hint=f"its columns: {', '.join(map(str, list(frame.columns)[:20]))}",
            )
    return names


def _choose(method: str, categorical: bool, ref_rows: int, distinct: int) -> str:
    if method != AUTO and not (categorical and method in (WASSERSTEIN, KS)):
        return method
    if ref_rows <= 1000:
        if categorical or distinct <= FEW_VALUES:
            return CHI2 if distinct > 2 else Z
        return KS
    if categorical or distinct <= FEW_VALUES:
        return JS
    return WASSERSTEIN


def _on_values(statistic: str, ref: np.ndarray, cur: np.ndarray) -> float:
    """A counted test on value counts aligned on the same keys."""
    if statistic == JS:
        return stats.jensen_shannon(ref, cur)
    if statistic == PSI:
        return stats.psi(ref, cur)
    if statistic == Z:
        if len(ref) == 1:
            return 1.0
        return stats.z_test_p(int(ref[0]), int(ref.sum()), int(cur[0]), int(cur.sum()))
    return stats.chi_squared_p(ref, cur)


def _numeric(name, kind, ref_col, cur_col, method, threshold) -> FeatureDrift:
    ref_all = numeric_values(ref_col, kind)
    cur_all = numeric_values(cur_col, kind)
    if kind == "numeric" and not pd.api.types.is_numeric_dtype(cur_col):
        bad = cur_col.notna().to_numpy() & np.isnan(cur_all)
        if bad.any():
            raise ValidationError(
                f"column {name!r} is numeric in the reference but has non-numeric values in the "
                f"current data (e.g. {cur_col[bad].iloc[0]!r})"
            )
    ref = ref_all[np.isfinite(ref_all)]
    ref.sort()
    cur = cur_all[np.isfinite(cur_all)]
    cur.sort()
    prof = NumericProfile.from_sorted(name, ref, len(ref_all) - len(ref), kind=kind)
    counts = prof.count_values(cur_all)
    missing = {
        "reference": rate(prof.missing, len(ref_all)),
        "current": rate(counts.missing, len(cur_all)),
    }
    result = FeatureDrift(
        column=name, kind=kind, statistic=AUTO, value=None, threshold=0.0, drift_detected=False,
        missing_rate=missing, out_of_range=counts.outside,
        mean={"reference": prof.mean, "current": float(cur.mean()) if len(cur) else float("nan")},
        histogram=_histogram(
            prof.bin_labels(), prof.reference_counts().counts, counts.counts, prof.edges
        ),
    )  # fmt: skip
    if not len(ref) or not len(cur):
        return _no_data(result, method, threshold, bool(len(ref)) != bool(len(cur)))
    # Counting distinct values costs a pass over the data: only when they may be few (the
    # reference's quantiles then repeat) or a counted statistic was asked for.
    keys = None
    levels = np.unique(stats.sorted_quantiles(ref, edge_levels()))
    if len(levels) <= FEW_VALUES or method in (JS, PSI, CHI2, Z):
        keys = np.union1d(_distinct(ref), _distinct(cur))
    statistic = _choose(method, False, len(ref), len(keys) if keys is not None else len(ref))
    values = _binned(prof.reference_counts().counts, counts.counts)
    values[WASSERSTEIN] = stats.normed(stats.wasserstein_sorted(ref, cur), prof.std)
    if statistic == KS:
        values[KS] = stats.ks_p(ref, cur)
    elif keys is not None and statistic != WASSERSTEIN and (len(keys) <= 20 or statistic == Z):
        # Few distinct values: count each value (what Evidently does below 21 values).
        ref_counts = np.bincount(np.searchsorted(keys, ref), minlength=len(keys))
        cur_counts = np.bincount(np.searchsorted(keys, cur), minlength=len(keys))
        values[statistic] = _on_values(statistic, ref_counts, cur_counts)
    return _decide(result, values, statistic, threshold)


def _categorical(name, ref_col, cur_col, method, threshold) -> FeatureDrift:
    ref_vals = categorical_values(ref_col)
    cur_vals = categorical_values(cur_col)
    ref_freq = ref_vals.value_counts(dropna=True)
    cur_freq = cur_vals.value_counts(dropna=True)
    prof = CategoricalProfile.from_values(name, ref_vals)
    counts = prof.count_values(cur_vals)
    unseen = int(cur_freq[~cur_freq.index.isin(ref_freq.index)].sum())
    result = FeatureDrift(
        column=name, kind=CATEGORICAL, statistic=AUTO, value=None, threshold=0.0,
        drift_detected=False, unseen=unseen,
        missing_rate={
            "reference": rate(len(ref_vals) - int(ref_freq.sum()), len(ref_vals)),
            "current": rate(len(cur_vals) - int(cur_freq.sum()), len(cur_vals)),
        },
        histogram=_histogram(prof.bin_labels(), prof.reference_counts().counts, counts.counts),
    )  # fmt: skip
    if not len(ref_freq) or not len(cur_freq):
        return _no_data(result, method, threshold, bool(len(ref_freq)) != bool(len(cur_freq)))
    keys = ref_freq.index.union(cur_freq.index)
    ref_counts = ref_freq.reindex(keys, fill_value=0).to_numpy(np.float64)
    cur_counts = cur_freq.reindex(keys, fill_value=0).to_numpy(np.float64)
    statistic = _choose(method, True, int(ref_freq.sum()), len(keys))
    values = {
        PSI: stats.psi(ref_counts, cur_counts),
        JS: stats.jensen_shannon(ref_counts, cur_counts),
        CHI2: stats.chi_squared_p(ref_counts, cur_counts),
    }
    if statistic == Z:
        values[Z] = _on_values(Z, ref_counts, cur_counts)
    return _decide(result, values, statistic, threshold)


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return sorted_values
    keep = np.empty(len(sorted_values), dtype=bool)
    keep[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return sorted_values[keep]


__all__ = ["detect_drift"]
