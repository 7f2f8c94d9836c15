"""Counts on a reference profile's bins: what a live window holds, mergeable by addition.

`FeatureCounts` is one feature's histogram on shared edges or categories plus missing and
out-of-range/unseen counts (and, for numeric features, the sum and sum of squares of the
finite values, for the mean shift). `WindowCounts` holds one per feature plus the prediction
and probability counts. Workers, replicas and windows add them up: `a + b`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.errors import ValidationError


@dataclass
class FeatureCounts:
    """One feature's counts: per bin (or category, last = __other__), missing, outside."""

    counts: np.ndarray
    missing: int = 0
    outside: int = 0  # numeric: beyond the reference min/max; categorical: unseen category
    total: float = 0.0  # sum of the finite values (numeric)
    total_sq: float = 0.0  # sum of their squares (numeric)

    @classmethod
    def zeros(cls, bins: int, *, missing: int = 0) -> FeatureCounts:
        return cls(np.zeros(bins, dtype=np.int64), missing)

    @property
    def present(self) -> int:
        """Rows with a value (non-missing)."""
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        return self.present + self.missing

    @property
    def mean(self) -> float:
        return self.total / self.present if self.present else float("nan")

    def __add__(self, other: FeatureCounts) -> FeatureCounts:
        if self.counts.shape != other.counts.shape:
            raise ValidationError(
                f"cannot add counts on {len(self.counts)} and {len(other.counts)} bins"
            )
        return FeatureCounts(
            self.counts + other.counts,
            self.missing + other.missing,
            self.outside + other.outside,
            self.total + other.total,
            self.total_sq + other.total_sq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": [int(c) for c in self.counts],
            "missing": int(self.missing),
            "outside": int(self.outside),
            "total": float(self.total),
            "total_sq": float(self.total_sq),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureCounts:
        return cls(
            np.asarray(data["counts"], dtype=np.int64),
            int(data.get("missing", 0)),
            int(data.get("outside", 0)),
            float(data.get("total", 0.0)),
            float(data.get("total_sq", 0.0)),
        )


def _add_optional(a: FeatureCounts | None, b: FeatureCounts | None) -> FeatureCounts | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


@dataclass
class WindowCounts:
    """Counts of a window of rows on a profile's bins; `a + b` merges two windows."""

    rows: int = 0
    features: dict[str, FeatureCounts] = field(default_factory=dict)
    predictions: FeatureCounts | None = None
    probabilities: FeatureCounts | None = None

    def __add__(self, other: WindowCounts) -> WindowCounts:
        if set(self.features) != set(other.features) and self.features and other.features:
            raise ValidationError("cannot add windows counted on different features")
        names = list(self.features) or list(other.features)
        return WindowCounts(
            rows=self.rows + other.rows,
            features={
                n: _add_optional(self.features.get(n), other.features.get(n))  # type: ignore[misc]
                for n in names
            },
            predictions=_add_optional(self.predictions, other.predictions),
            probabilities=_add_optional(self.probabilities, other.probabilities),
        )

    def __sub__(self, other: WindowCounts) -> WindowCounts:
        """Remove an older batch (sliding windows keep a running sum and subtract what expires)."""
        return self + other.scaled(-1)

    def scaled(self, factor: int) -> WindowCounts:
        def one(c: FeatureCounts | None) -> FeatureCounts | None:
            if c is None:
                return None
            return FeatureCounts(
                c.counts * factor, c.missing * factor, c.outside * factor,
                c.total * factor, c.total_sq * factor,
            )  # fmt: skip

        return WindowCounts(
            self.rows * factor,
            {n: one(c) for n, c in self.features.items()},  # type: ignore[misc]
            one(self.predictions),
            one(self.probabilities),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": int(self.rows),
            "features": {n: c.to_dict() for n, c in self.features.items()},
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
            "probabilities": None if self.probabilities is None else self.probabilities.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        try:
            return cls(
                rows=int(data["rows"]),
                features={n: FeatureCounts.from_dict(c) for n, c in data["features"].items()},
                predictions=(
                    None if data.get("predictions") is None
                    else FeatureCounts.from_dict(data["predictions"])
                ),
                probabilities=(
                    None if data.get("probabilities") is None
                    else FeatureCounts.from_dict(data["probabilities"])
                ),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed window counts: {exc}") from exc
