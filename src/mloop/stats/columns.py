"""Column profiles: one feature's reference distribution on bins that live windows share.

`NumericProfile` (numeric and date features): bin edges from reference quantiles with the
reference counts, moments and quantiles. `CategoricalProfile`: top-K category counts plus
`__other__`. Both count raw values on their bins (`count_values`) and merge with a profile on
the same bins. `mloop.stats.profile.ReferenceProfile` holds one per feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mloop.errors import ValidationError
from mloop.stats.counts import FeatureCounts
from mloop.stats.kinds import (
    CATEGORICAL,
    NUMERIC,
    OTHER,
    categorical_values,
    numeric_values,
)
from mloop.stats.measures import sorted_quantiles

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_BINS = 10  # equal-mass bins, plus the tail bins below: 18 bins in all
# Finer bins in both tails, so a shift there is seen and the binned Wasserstein stays close.
TAIL_LEVELS = (0.005, 0.01, 0.025, 0.05, 0.95, 0.975, 0.99, 0.995)
DISCRETE_VALUES = 20  # up to this many distinct values, each value gets its own bin
TOP_K = 50
QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    keep = np.ones(len(sorted_values), dtype=bool)
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return sorted_values[keep]


def edge_levels(bins: int = NUMERIC_BINS) -> np.ndarray:
    """Quantile levels of the bin edges: `bins` equal-mass bins plus `TAIL_LEVELS`."""
    return np.unique(np.concatenate([np.linspace(0.0, 1.0, bins + 1), TAIL_LEVELS]))


@dataclass
class NumericProfile:
    """A numeric (or date, as days since 1970) feature: quantile bins and moments."""

    name: str
    edges: list[float]
    counts: list[int]
    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float] = field(default_factory=dict)
    kind: str = NUMERIC

    @classmethod
    def from_sorted(
        cls, name: str, values: np.ndarray, missing: int, *, bins: int = NUMERIC_BINS, kind=NUMERIC
    ) -> NumericProfile:
        """Profile of finite values sorted ascending (NaNs removed and counted in `missing`)."""
        if len(values) == 0:
            return cls(name, [], [], 0, missing, *(float("nan"),) * 4, {}, kind)
        levels = edge_levels(bins)
        edges = np.unique(sorted_quantiles(values, levels))
        # Repeated quantiles hint at few distinct values; only then count them (a full pass).
        distinct = _distinct(values) if len(edges) < len(levels) else None
        if distinct is not None and len(distinct) <= DISCRETE_VALUES:
            # Few distinct values (flags, counts): one bin per value, split at the midpoints.
            edges = np.concatenate(
                [distinct[:1], (distinct[:-1] + distinct[1:]) / 2, distinct[-1:]]
            )
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        inner = np.searchsorted(values, edges[1:-1], side="left")
        counts = np.diff(np.concatenate([[0], inner, [len(values)]]))
        points = sorted_quantiles(values, np.array([*QUANTILES.values()]))
        quantiles = dict(zip(QUANTILES, points, strict=True))
        return cls(
            name=name,
            edges=[float(e) for e in edges],
            counts=[int(c) for c in counts],
            count=len(values),
            missing=int(missing),
            mean=float(values.mean()),
            std=float(values.std()),
            min=float(values[0]),
            max=float(values[-1]),
            quantiles={k: float(v) for k, v in quantiles.items()},
            kind=kind,
        )

    @classmethod
    def fixed(cls, name: str, values: np.ndarray, edges: np.ndarray) -> NumericProfile:
        """Profile on given edges (probabilities use 0, 0.1, ..., 1)."""
        finite = np.sort(values[np.isfinite(values)])
        profile = cls.from_sorted(name, finite, len(values) - len(finite))
        profile.edges = [float(e) for e in edges]
        profile.counts = [
            int(c) for c in np.bincount(profile.bin_index(finite), minlength=len(edges) - 1)
        ]
        return profile

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each finite value on this profile's edges (beyond the ends: the end bins)."""
        return np.searchsorted(np.asarray(self.edges[1:-1]), values, side="right")

    def count_values(self, values: np.ndarray) -> FeatureCounts:
        """Counts of raw values (NaN = missing) on this profile's bins."""
        finite_mask = np.isfinite(values)
        finite = values[finite_mask]
        nbins = max(len(self.edges) - 1, 1)
        if not self.edges:
            return FeatureCounts(np.zeros(1, np.int64), int((~finite_mask).sum()), len(finite))
        counts = np.bincount(self.bin_index(finite), minlength=nbins).astype(np.int64)
        outside = int(np.count_nonzero((finite < self.edges[0]) | (finite > self.edges[-1])))
        return FeatureCounts(
            counts,
            int(len(values) - len(finite)),
            outside,
            total=float(finite.sum()),
            total_sq=float(np.dot(finite, finite)),
        )

    def reference_counts(self) -> FeatureCounts:
        mean, std, n = self.mean, self.std, self.count
        return FeatureCounts(
            np.asarray(self.counts or [0], np.int64),
            self.missing,
            0,
            total=mean * n if n else 0.0,
            total_sq=(std**2 + mean**2) * n if n else 0.0,
        )

    def merge(self, other: NumericProfile) -> NumericProfile:
        if self.edges != other.edges:
            raise ValidationError(f"cannot merge profiles of {self.name!r}: different bin edges")
        n = self.count + other.count
        mean = (self.mean * self.count + other.mean * other.count) / n if n else self.mean
        second = (
            (
                self.count * (self.std**2 + self.mean**2)
                + other.count * (other.std**2 + other.mean**2)
            )
            / n
            if n
            else 0.0
        )
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        cdf = np.concatenate([[0.0], np.cumsum(counts)]) / max(sum(counts), 1)
        quantiles = {k: float(np.interp(q, cdf, self.edges)) for k, q in QUANTILES.items()}
        return NumericProfile(
            self.name, list(self.edges), counts, n, self.missing + other.missing, float(mean),
            float(np.sqrt(max(second - mean**2, 0.0))), min(self.min, other.min),
            max(self.max, other.max), quantiles, self.kind,
        )  # fmt: skip

    def bin_labels(self) -> list[str]:
        return [f"{a:.4g}..{b:.4g}" for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)]


@dataclass
class CategoricalProfile:
    """A categorical feature: counts of its top-K categories, the rest in `__other__`."""

    name: str
    categories: list[str]
    counts: list[int]  # one per category, then __other__
    count: int
    missing: int
    truncated: bool = False
    kind: str = CATEGORICAL

    @classmethod
    def from_values(cls, name: str, values: pd.Series, *, top_k: int = TOP_K) -> CategoricalProfile:
        """Profile of string values (missing as NA)."""
        freq = values.value_counts(dropna=True)
        freq = freq.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        top = freq.iloc[:top_k]
        other = int(freq.iloc[top_k:].sum())
        count = int(freq.sum())
        return cls(
            name=name,
            categories=[str(c) for c in top.index],
            counts=[int(c) for c in top.to_numpy()] + [other],
            count=count,
            missing=int(len(values) - count),
            truncated=len(freq) > top_k,
        )

    def count_values(self, values: pd.Series) -> FeatureCounts:
        import pandas as pd  # lazy: the streamed drift path needs no pandas

        codes = pd.Index(self.categories, dtype="string").get_indexer_for(values)
        missing = int(values.isna().to_numpy().sum())
        known = codes[codes >= 0]
        counts = np.bincount(known, minlength=len(self.categories) + 1).astype(np.int64)
        unseen = int(len(codes) - len(known) - missing)
        counts[-1] += unseen
        return FeatureCounts(counts, missing, unseen)

    def reference_counts(self) -> FeatureCounts:
        return FeatureCounts(np.asarray(self.counts, np.int64), self.missing, 0)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        if self.categories != other.categories:
            raise ValidationError(f"cannot merge profiles of {self.name!r}: different categories")
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return CategoricalProfile(
            self.name, list(self.categories), counts, self.count + other.count,
            self.missing + other.missing, self.truncated or other.truncated,
        )  # fmt: skip

    def bin_labels(self) -> list[str]:
        return [*self.categories, OTHER]


FeatureProfile = NumericProfile | CategoricalProfile


def profile_column(
    name: str, series: pd.Series, kind: str, *, bins: int = NUMERIC_BINS, top_k: int = TOP_K
) -> FeatureProfile:
    """Profile one column as `numeric`, `date` or `categorical`."""
    if kind == CATEGORICAL:
        return CategoricalProfile.from_values(name, categorical_values(series), top_k=top_k)
    values = numeric_values(series, kind)
    finite = np.sort(values[np.isfinite(values)])
    return NumericProfile.from_sorted(name, finite, len(values) - len(finite), bins=bins, kind=kind)
