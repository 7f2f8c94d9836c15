"""Drift statistics on counts (histograms) and on sorted samples, vectorised with numpy.

Two families, as documented in docs/drift.md:

- on counts over shared bins (what the live window and the reference profile hold): PSI,
  Jensen-Shannon distance, normalised Wasserstein (piecewise-linear CDF inside each bin) and
  the chi-squared goodness-of-fit p-value;
- on raw samples (the batch path): the exact normalised Wasserstein distance and the
  Kolmogorov-Smirnov and two-proportion Z-test p-values, following Evidently 0.7's definitions
  so both tools reach the same verdicts.
"""

from __future__ import annotations

import numpy as np
from scipy import special

# Evidently fills empty bins before PSI so the log stays finite; same rule here.
_PSI_FLOOR = 1e-4
STD_FLOOR = 0.001  # Evidently: norm = max(std(reference), 0.001)


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts -> shares summing to 1 (all zeros stay zeros)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    nonzero = p[p > 0]
    if not len(nonzero):
        return p
    floor = nonzero.min() / 1e6 if nonzero.min() <= _PSI_FLOOR else _PSI_FLOOR
    return np.where(p == 0, floor, p)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum((q - p) * ln(q / p)) over shares, empty bins floored."""
    p = _fill_zeros(shares(reference))
    q = _fill_zeros(shares(current))
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, natural log: 0..sqrt(ln 2)).

    Same as `scipy.spatial.distance.jensenshannon(p, q)`, which Evidently calls.
    """
    p = shares(reference)
    q = shares(current)
    m = (p + q) / 2.0
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
    return float(np.sqrt(max(divergence, 0.0)))


def chi_squared_p(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of current counts against reference shares (Evidently's chi-squared test).

    Expected counts are the reference counts scaled to the current total. A category the
    reference never saw but the current has makes the statistic infinite: p = 0.
    """
    ref = np.asarray(reference, dtype=np.float64)
    obs = np.asarray(current, dtype=np.float64)
    if ref.sum() <= 0 or obs.sum() <= 0:
        return 1.0
    expected = ref * (obs.sum() / ref.sum())
    if np.any((expected == 0) & (obs > 0)):
        return 0.0
    used = expected > 0
    if used.sum() < 2:
        return 1.0
    statistic = float(np.sum((obs[used] - expected[used]) ** 2 / expected[used]))
    return float(special.chdtrc(int(used.sum()) - 1, statistic))  # chi2.sf, without scipy.stats


def binned_wasserstein(
    edges: np.ndarray,
    reference: np.ndarray,
    current: np.ndarray,
) -> float:
    """Wasserstein-1 distance between two histograms on the same edges.

    Mass is spread uniformly inside each bin, so both CDFs are piecewise linear and the
    integral of |F_ref - F_cur| is exact for that model (a crossing inside a bin included).
    """
    edges = np.asarray(edges, dtype=np.float64)
    if len(edges) < 2:
        return 0.0
    f_ref = np.concatenate([[0.0], np.cumsum(shares(reference))])
    f_cur = np.concatenate([[0.0], np.cumsum(shares(current))])
    d0 = (f_ref - f_cur)[:-1]
    d1 = (f_ref - f_cur)[1:]
    width = np.diff(edges)
    same = np.sign(d0) * np.sign(d1) >= 0
    a0, a1 = np.abs(d0), np.abs(d1)
    total = a0 + a1
    crossing = np.divide(d0**2 + d1**2, 2.0 * total, out=np.zeros_like(total), where=total > 0)
    area = np.where(same, (a0 + a1) / 2.0, crossing) * width
    return float(area.sum())


def normed(distance: float, std: float) -> float:
    """A distance in units of the reference std (Evidently's normalisation, floored at 0.001)."""
    return float(distance / max(float(std), STD_FLOOR))


def wasserstein_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """Exact Wasserstein-1 distance of two *sorted* samples, in O(n + m) after the sorts.

    Equal to `scipy.stats.wasserstein_distance(reference, current)`, computed as the integral
    of |Q_ref(u) - Q_cur(u)| over u in (0, 1] (Q: the empirical quantile functions). With
    n >= m, every step (i-1)/n..i/n of the larger sample holds at most one step change of the
    smaller one: one vectorised pass over the larger sample, one correction per step of the
    smaller. No merge, no extra sort.
    """
    a, b = (reference, current) if len(reference) >= len(current) else (current, reference)
    n, m = len(a), len(b)
    if m == 0:
        return float("nan")
    # Q_b at the right end of each step of a: b[ceil(i * m / n) - 1].
    k = np.arange(m, (n + 1) * m, m, dtype=np.int64)  # i * m for i = 1..n, in place below
    k += n - 1
    k //= n
    k -= 1
    gap = b[k]
    np.subtract(a, gap, out=gap)
    np.abs(gap, out=gap)
    total = float(gap.sum()) / n
    # Steps of a that contain a step change j/m of b inside: the left part used b[j] but
    # should use b[j - 1].
    j = np.arange(1, m, dtype=np.int64)
    j = j[(j * n) % m != 0]
    step = (j * n) // m + 1
    left = a[step - 1]
    width = j / m - (step - 1) / n
    total += float(np.dot(width, np.abs(left - b[j - 1]) - np.abs(left - b[j])))
    return total


def ks_p(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (scipy, as Evidently)."""
    from scipy import stats as sps  # lazy: +1 s of imports that only KS needs

    return float(sps.ks_2samp(reference, current).pvalue)


def z_test_p(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> float:
    """Two-sided p-value of the difference of two proportions (Evidently's Z-test)."""
    p1, p2 = ref_hits / ref_n, cur_hits / cur_n
    pooled = (ref_hits + cur_hits) / (ref_n + cur_n)
    spread = np.sqrt(pooled * (1 - pooled) * (1.0 / ref_n + 1.0 / cur_n))
    if spread == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * (1 - special.ndtr(abs((p1 - p2) / spread))))  # norm.cdf


def sorted_quantiles(values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles of an already sorted array (numpy's default linear interpolation)."""
    if len(values) == 0:
        return np.full(len(q), np.nan)
    pos = np.asarray(q, dtype=np.float64) * (len(values) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(values) - 1)
    frac = pos - lo
    return values[lo] * (1 - frac) + values[hi] * frac
