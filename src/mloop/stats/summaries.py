"""Mergeable per-column summaries, and drift verdicts computed from them (no raw rows kept).

The out-of-memory path behind `mloop drift` (see docs/drift.md, "Engines and memory"): each
batch of rows, on this machine or on a Ray worker, becomes a small summary per column; the
summaries of all batches merge (`merge`) into one per column and side, and `column_drift`
turns a reference and a current summary into the same `FeatureDrift` as
`mloop.stats.samples`:

- numeric: row, missing and moment counts, exact min/max, counts on a fine uniform `Grid`
  shared by both sides (its range from both files' min/max), and the exact value counts while
  a column has at most `DISCRETE_VALUES` distinct values;
- categorical: exact value counts.

Exact from these: missing rates, means, std, out-of-range counts, every statistic on value
counts (categorical columns, numeric ones with few values). From the grid: the normalised
Wasserstein distance, within `wasserstein_error` (two bin widths over the reference std) of
the exact one, and the display bins (reference quantiles snapped to the grid). A caller whose
verdict falls inside that error recomputes the column exactly (`needs_exact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mloop.stats import measures as stats
from mloop.stats.columns import (
    DISCRETE_VALUES,
    TOP_K,
    CategoricalProfile,
    NumericProfile,
    edge_levels,
)
from mloop.stats.kinds import CATEGORICAL
from mloop.stats.verdict import AUTO, CHI2, JS, PSI, WASSERSTEIN, FeatureDrift, rate
from mloop.stats.verdict import binned_statistics as _binned
from mloop.stats.verdict import decide as _decide
from mloop.stats.verdict import histogram as _histogram
from mloop.stats.verdict import no_data as _no_data

GRID_BINS = 8192  # fine bins: Wasserstein within 2 bin widths, 64 KiB per numeric column
FEW_VALUES = 5  # as mloop.stats.samples: up to this many distinct values, Jensen-Shannon


@dataclass(frozen=True)
class Grid:
    """`bins` equal bins over [lo, hi]; values beyond the ends count in the end bins."""

    lo: float
    hi: float
    bins: int = GRID_BINS

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.bins if self.hi > self.lo else 1.0

    def edge(self, index: np.ndarray) -> np.ndarray:
        return self.lo + np.asarray(index, dtype=np.float64) * self.width


@dataclass
class NumericSummary:
    """One numeric column of one side: counts on the grid, moments, bounds, few values."""

    grid: Grid
    rows: int = 0
    missing: int = 0
    shifted_sum: float = 0.0  # of x - grid.lo, for a stable mean and std
    shifted_sq: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")
    below: int = 0  # values below / above `bounds` (the reference's min and max)
    above: int = 0
    bounds: tuple[float, float] | None = None
    hist: np.ndarray = field(default=None)  # type: ignore[assignment]
    values: dict[float, int] | None = field(default_factory=dict)  # None: many values

    def __post_init__(self) -> None:
        if self.hist is None:
            self.hist = np.zeros(self.grid.bins, dtype=np.int64)

    @property
    def count(self) -> int:
        return self.rows - self.missing

    def add(self, x: np.ndarray) -> None:
        """Count a batch of float64 values (NaN and +-inf are missing)."""
        self.rows += len(x)
        finite = np.isfinite(x)
        if not finite.all():
            x = x[finite]
        self.missing += len(finite) - len(x)
        if not len(x):
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        if self.bounds is not None:
            self.below += int(np.count_nonzero(x < self.bounds[0]))
            self.above += int(np.count_nonzero(x > self.bounds[1]))
        t = x - self.grid.lo
        self.shifted_sum += float(t.sum())
        self.shifted_sq += float(np.einsum("i,i->", t, t))  # not np.dot: BLAS threads cost more
        t *= 1.0 / self.grid.width
        index = t.astype(np.intp)
        np.clip(index, 0, self.grid.bins - 1, out=index)
        batch = np.bincount(index, minlength=self.grid.bins)
        self.hist += batch
        if self.values is not None:
            if np.count_nonzero(batch) > DISCRETE_VALUES:  # more bins used than values allowed
                self.values = None
            else:
                keys, counts = np.unique(x, return_counts=True)
                self._add_values(dict(zip(keys.tolist(), counts.tolist(), strict=True)))

    def _add_values(self, other: dict[float, int] | None) -> None:
        if self.values is None or other is None:
            self.values = None
            return
        for key, n in other.items():
            self.values[key] = self.values.get(key, 0) + n
        if len(self.values) > DISCRETE_VALUES:
            self.values = None

    def merge(self, other: NumericSummary) -> NumericSummary:
        """Add another batch's summary of the same column on the same grid (in place)."""
        self.rows += other.rows
        self.missing += other.missing
        self.shifted_sum += other.shifted_sum
        self.shifted_sq += other.shifted_sq
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.below += other.below
        self.above += other.above
        self.hist += other.hist
        self._add_values(other.values)
        return self

    @property
    def mean(self) -> float:
        return self.grid.lo + self.shifted_sum / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if not self.count:
            return float("nan")
        m = self.shifted_sum / self.count
        return float(np.sqrt(max(self.shifted_sq / self.count - m * m, 0.0)))


@dataclass
class CategoricalSummary:
    """One categorical column of one side: exact value counts and missing values."""

    rows: int = 0
    missing: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.rows - self.missing

    def add_counts(self, rows: int, missing: int, counts: dict[str, int]) -> None:
        self.rows += rows
        self.missing += missing
        for key, n in counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        self.add_counts(other.rows, other.missing, other.counts)
        return self

    def looks_like_id(self, min_rows: int = 50) -> bool:
        """Every value distinct (as `mloop.stats.kinds.looks_like_id`): an identifier."""
        return self.count >= min_rows and len(self.counts) == self.count


Summary = NumericSummary | CategoricalSummary


def merge(summaries: list[dict[str, Summary]]) -> dict[str, Summary]:
    """Merge per-batch summaries {column: summary} into one per column (the first is reused)."""
    merged: dict[str, Summary] = {}
    for part in summaries:
        for name, summary in part.items():
            if name in merged:
                merged[name].merge(summary)  # type: ignore[arg-type]
            else:
                merged[name] = summary
    return merged


def wasserstein_error(ref: NumericSummary) -> float:
    """Bound on |binned - exact| normalised Wasserstein: each side's mass moves <= 1 bin width."""
    return 2.0 * ref.grid.width / max(ref.std, stats.STD_FLOOR)


def column_drift(
    name: str, kind: str, ref: Summary, cur: Summary, method: str, threshold: float | None
) -> FeatureDrift:
    """The column's verdict from its two summaries (methods auto and wasserstein_normed)."""
    if kind == CATEGORICAL:
        return _categorical(name, ref, cur, method, threshold)  # type: ignore[arg-type]
    return _numeric(name, kind, ref, cur, method, threshold)  # type: ignore[arg-type]


def needs_exact(result: FeatureDrift, ref: Summary) -> bool:
    """True when a binned Wasserstein verdict is within its error bound of the threshold."""
    if result.statistic != WASSERSTEIN or not isinstance(ref, NumericSummary):
        return False
    if result.value is None:
        return False
    return abs(result.value - result.threshold) <= wasserstein_error(ref)


def _numeric(name, kind, ref: NumericSummary, cur: NumericSummary, method, threshold):
    prof, cut = _profile(name, kind, ref)
    cur_counts = _on_display_bins(cur, prof, cut)
    result = FeatureDrift(
        column=name, kind=kind, statistic=AUTO, value=None, threshold=0.0, drift_detected=False,
        missing_rate={"reference": rate(ref.missing, ref.rows),
                      "current": rate(cur.missing, cur.rows)},
        out_of_range=cur.below + cur.above, mean={"reference": ref.mean, "current": cur.mean},
        histogram=_histogram(prof.bin_labels(), np.asarray(prof.counts), cur_counts, prof.edges),
    )  # fmt: skip
    if not ref.count or not cur.count:
        return _no_data(result, method, threshold, bool(ref.count) != bool(cur.count))
    ref_counts = np.asarray(prof.counts, dtype=np.int64)
    values = _binned(ref_counts, cur_counts)
    distance = stats.binned_wasserstein(ref.grid.edge(np.arange(ref.grid.bins + 1)), ref.hist,
                                        cur.hist)  # fmt: skip
    distance = max(distance, abs(cur.mean - ref.mean))  # W1 >= |mean shift|: a tighter floor
    values[WASSERSTEIN] = stats.normed(distance, ref.std)
    statistic = WASSERSTEIN
    if ref.values is not None and cur.values is not None:
        keys = sorted(set(ref.values) | set(cur.values))
        if method == AUTO and len(keys) <= FEW_VALUES:
            statistic = JS  # few values: Jensen-Shannon on the value counts, as Evidently
            values[JS] = stats.jensen_shannon(
                np.array([ref.values.get(k, 0) for k in keys], dtype=np.float64),
                np.array([cur.values.get(k, 0) for k in keys], dtype=np.float64),
            )
    return _decide(result, values, statistic, threshold)


def _profile(name: str, kind: str, ref: NumericSummary) -> tuple[NumericProfile, np.ndarray]:
    """The reference's display bins: exact for few values, else quantiles snapped to the grid.

    Also returns, per inner edge, the grid index where it cuts (or, for few values, the value).
    """
    if not ref.count:
        return NumericProfile(name, [], [], 0, ref.missing, *(float("nan"),) * 4, {}, kind), (
            np.array([])
        )
    levels = edge_levels()
    if ref.values is not None:
        keys = np.array(sorted(ref.values), dtype=np.float64)
        counts = np.array([ref.values[k] for k in keys], dtype=np.int64)
        edges = np.unique(_quantiles_of_counts(keys, counts, levels))
        if len(edges) < len(levels) and len(keys) <= DISCRETE_VALUES:
            edges = np.concatenate([keys[:1], (keys[:-1] + keys[1:]) / 2, keys[-1:]])
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        inner = edges[1:-1]
        bins = np.searchsorted(inner, keys, side="right")
        shown = np.bincount(bins, weights=counts, minlength=len(edges) - 1).astype(np.int64)
        cut = inner
    else:
        cum = np.concatenate([[0], np.cumsum(ref.hist)])
        index = np.unique(np.searchsorted(cum, levels[1:-1] * ref.count, side="left"))
        index = index[(index > 0) & (index < ref.grid.bins)]
        inner = ref.grid.edge(index)
        keep = (inner > ref.min) & (inner <= ref.max)
        index, inner = index[keep], inner[keep]
        edges = np.concatenate([[ref.min], inner, [ref.max]])
        if len(edges) == 2 and ref.min == ref.max:
            edges = np.array([ref.min, ref.min])
        shown = np.diff(np.concatenate([[0], cum[index], [ref.count]])).astype(np.int64)
        cut = index
    prof = NumericProfile(
        name, [float(e) for e in edges], [int(c) for c in shown], ref.count, ref.missing,
        ref.mean, ref.std, ref.min, ref.max, {}, kind,
    )  # fmt: skip
    return prof, cut


def _on_display_bins(cur: NumericSummary, prof: NumericProfile, cut: np.ndarray) -> np.ndarray:
    """The current side's counts on the reference's display bins (exact: cuts on the grid)."""
    nbins = max(len(prof.edges) - 1, 1)
    if not cur.count or not prof.edges:
        return np.zeros(nbins, dtype=np.int64)
    if cut.dtype.kind == "f":  # few reference values: cuts are midpoints between values
        if cur.values is not None:
            keys = np.array(list(cur.values), dtype=np.float64)
            weights = np.array(list(cur.values.values()), dtype=np.float64)
            bins = np.searchsorted(cut, keys, side="right")
            return np.bincount(bins, weights=weights, minlength=nbins).astype(np.int64)
        cut = np.searchsorted(cur.grid.edge(np.arange(cur.grid.bins + 1)), cut)  # approximate
    cum = np.concatenate([[0], np.cumsum(cur.hist)])
    return np.diff(np.concatenate([[0], cum[cut.astype(np.intp)], [cur.count]])).astype(np.int64)


def _quantiles_of_counts(keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """numpy's linear quantiles of the sorted sample that `counts` of `keys` make up."""
    n = int(counts.sum())
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    ends = np.cumsum(counts)
    at = keys[np.searchsorted(ends, lo, side="right")]
    above = keys[np.searchsorted(ends, hi, side="right")]
    frac = pos - lo
    return at * (1 - frac) + above * frac


def _categorical(name, ref: CategoricalSummary, cur: CategoricalSummary, method, threshold):
    ranked = sorted(ref.counts.items(), key=lambda kv: kv[0])
    ranked.sort(key=lambda kv: -kv[1])  # stable: ties by name, as CategoricalProfile
    top = ranked[:TOP_K]
    other = sum(n for _, n in ranked[TOP_K:])
    prof = CategoricalProfile(
        name, [k for k, _ in top], [n for _, n in top] + [other], ref.count, ref.missing,
        len(ranked) > TOP_K,
    )  # fmt: skip
    unseen = sum(n for k, n in cur.counts.items() if k not in ref.counts)
    shown = [cur.counts.get(k, 0) for k, _ in top]
    cur_shown = np.array(shown + [cur.count - sum(shown)], dtype=np.int64)
    result = FeatureDrift(
        column=name, kind=CATEGORICAL, statistic=AUTO, value=None, threshold=0.0,
        drift_detected=False, unseen=unseen,
        missing_rate={"reference": rate(ref.missing, ref.rows),
                      "current": rate(cur.missing, cur.rows)},
        histogram=_histogram(prof.bin_labels(), np.asarray(prof.counts), cur_shown),
    )  # fmt: skip
    if not ref.count or not cur.count:
        return _no_data(result, method, threshold, bool(ref.count) != bool(cur.count))
    keys = sorted(set(ref.counts) | set(cur.counts))
    ref_counts = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([cur.counts.get(k, 0) for k in keys], dtype=np.float64)
    values = {
        PSI: stats.psi(ref_counts, cur_counts),
        JS: stats.jensen_shannon(ref_counts, cur_counts),
        CHI2: stats.chi_squared_p(ref_counts, cur_counts),
    }
    return _decide(result, values, JS, threshold)


__all__ = [
    "CategoricalSummary",
    "Grid",
    "NumericSummary",
    "column_drift",
    "merge",
    "needs_exact",
    "wasserstein_error",
]
