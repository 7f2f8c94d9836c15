"""The promotion gate's drift check: PSI of evaluation data against the training split.

No statistics of its own: each feature's population stability index comes from
`mloop.stats.samples.detect_drift` with `method="psi"`, the same numbers `mloop drift --method
psi` and the live monitor report (PSI on the reference's quantile bins, on the values when a
feature has few, or on the categories; missing values left out and reported as missing rates).
A feature drifts at PSI >= `max_psi`, or when it has values on one side only. Common reading:
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
"""

from __future__ import annotations

import pandas as pd

from mloop.stats.samples import detect_drift
from mloop.stats.verdict import PSI, DriftResult


def psi_drift(reference: pd.DataFrame, current: pd.DataFrame, max_psi: float) -> DriftResult:
    """PSI per feature over the columns both tables have, each column's verdict at `max_psi`.

    Bad input (a numeric feature with text values, an empty table) is a ValidationError
    naming it.
    """
    shared = [str(column) for column in reference.columns if column in current.columns]
    if not shared:
        return DriftResult([], len(reference), len(current), PSI)
    return detect_drift(reference, current, columns=shared, method=PSI, threshold=max_psi)
