"""The streamed path (`mloop.stats.scan`) against the exact in-memory one on the same files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.errors import ValidationError
from mloop.stats.samples import detect_drift
from mloop.stats.scan import scan_drift
from mloop.stats.summaries import Grid, NumericSummary, merge

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "drift_vs_evidently.py"


def _bench():
    spec = importlib.util.spec_from_file_location("drift_vs_evidently", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_files(tmp_path_factory):
    """The benchmark's own tables (50 columns, 11 drifted), at a test's size."""
    return _bench().make_tables(20_000, 2_000, tmp_path_factory.mktemp("bench"))


def exact(ref: Path, cur: Path, **options):
    return detect_drift(pd.read_parquet(ref), pd.read_parquet(cur), **options)


def assert_same_verdicts(streamed, reference):
    assert [c.column for c in streamed.columns] == [c.column for c in reference.columns]
    assert streamed.skipped == reference.skipped
    for mine, theirs in zip(streamed.columns, reference.columns, strict=True):
        name = mine.column
        assert (mine.statistic, mine.drift_detected) == (theirs.statistic, theirs.drift_detected)
        assert mine.missing_rate == pytest.approx(theirs.missing_rate), name
        assert mine.out_of_range == theirs.out_of_range, name
        assert mine.unseen == theirs.unseen, name
        assert mine.value == pytest.approx(theirs.value, abs=0.01), name
    assert streamed.dataset_drift == reference.dataset_drift


def test_streamed_verdicts_equal_the_exact_path_on_the_benchmark_tables(bench_files):
    ref, cur = bench_files
    streamed = scan_drift(ref, cur)
    assert_same_verdicts(streamed, exact(ref, cur))
    drifted = {c.column for c in streamed.columns if c.drift_detected}
    assert set(_bench().DRIFTED) <= drifted  # (200-category columns are noisy at this size)
    # categorical and few-valued columns are exact, not binned
    theirs = exact(ref, cur, columns=["c35", "i31"])
    for name in ("c35", "i31"):
        assert streamed.column(name).value == pytest.approx(theirs.column(name).value, rel=1e-12)


def test_a_verdict_near_the_threshold_is_recomputed_exactly(bench_files):
    ref, cur = bench_files
    at = exact(ref, cur, columns=["f01"]).column("f01").value  # exactly on the threshold
    streamed = scan_drift(ref, cur, columns=["f01", "f00"], threshold=at)
    reference = exact(ref, cur, columns=["f01", "f00"], threshold=at)
    assert_same_verdicts(streamed, reference)
    assert streamed.column("f01").value == reference.column("f01").value  # the exact value


def test_dates_ids_flags_and_sparse_columns_follow_the_exact_path(tmp_path):
    rng = np.random.default_rng(3)
    start = pd.Timestamp("2024-01-01")

    def table(rows, shift):
        sparse = rng.normal(0, 1, rows)
        sparse[rng.random(rows) < 0.9] = np.nan  # at most ~1000 reference values: KS
        return pd.DataFrame({
            "id": [f"row{i}" for i in range(rows)],
            "day": start + pd.to_timedelta(rng.integers(0, 90 + shift, rows), "D"),
            "iso": (start + pd.to_timedelta(rng.integers(0, 30, rows), "D")).strftime("%Y-%m-%d"),
            "flag": rng.random(rows) < (0.3 + 0.4 * bool(shift)),
            "sparse": sparse,
            "count": pd.array(rng.poisson(3, rows), dtype="Int64"),
        })  # fmt: skip

    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    frame = table(8000, 0)
    frame.loc[::7, "count"] = pd.NA  # integer nulls
    frame.to_parquet(ref, row_group_size=3000)
    table(3000, 60).to_parquet(cur)
    streamed = scan_drift(ref, cur)
    assert_same_verdicts(streamed, exact(ref, cur))
    assert "id" in streamed.skipped
    assert streamed.column("day").drift_detected and streamed.column("flag").drift_detected


def test_summaries_merge_to_the_summary_of_the_whole():
    values = np.random.default_rng(1).normal(0, 1, 10_000)
    grid = Grid(float(values.min()), float(values.max()), bins=64)
    whole, parts = NumericSummary(grid), [NumericSummary(grid), NumericSummary(grid)]
    whole.add(values)
    parts[0].add(values[:3000])
    parts[1].add(values[3000:])
    merged = merge([{"x": parts[0]}, {"x": parts[1]}])["x"]
    assert merged.hist.tolist() == whole.hist.tolist()
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.mean == pytest.approx(values.mean()) and merged.std == pytest.approx(values.std())


def test_bad_requests_name_the_problem(bench_files, tmp_path):
    ref, cur = bench_files
    with pytest.raises(ValidationError, match="no column 'nope'"):
        scan_drift(ref, cur, columns=["nope"])
    with pytest.raises(ValidationError, match="unknown engine"):
        scan_drift(ref, cur, engine="spark")
    with pytest.raises(ValidationError, match="not streamed"):
        scan_drift(ref, cur, method="ks")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="cannot read parquet file"):
        scan_drift(broken, cur)
