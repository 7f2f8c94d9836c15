"""Population stability index (PSI) of evaluation data against the training reference.

A small, dependency-free measure for the promotion gate: numeric columns are binned at the
reference's deciles, categorical columns by value; PSI = sum((a - e) * ln(a / e)). Common
reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = 1e-4


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """PSI of one column (missing values form their own bin)."""
    ref, cur = reference.reset_index(drop=True), current.reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref):
        values = ref.dropna().to_numpy(dtype=float)
        if len(values) == 0:
            return 0.0
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        expected = _numeric_shares(ref, edges)
        actual = _numeric_shares(cur, edges)
    else:
        ref_s, cur_s = (
            ref.astype("string").fillna("<missing>"),
            cur.astype("string").fillna("<missing>"),
        )
        categories = sorted(set(ref_s.unique()) | set(cur_s.unique()))
        expected = ref_s.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
        actual = cur_s.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    expected = np.clip(expected, EPS, None)
    actual = np.clip(actual, EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _numeric_shares(column: pd.Series, edges: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    missing = np.isnan(values)
    counts = np.bincount(
        np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1
    ).astype(float)
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def psi_by_column(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """PSI of every reference column that the current data also has."""
    return {
        column: psi(reference[column], current[column])
        for column in reference.columns
        if column in current.columns
    }
