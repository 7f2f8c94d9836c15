"""Batch drift on raw samples (Evidently's default test per column) and the HTML report."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from mloop.errors import ValidationError
from mloop.monitoring.report_html import render
from mloop.stats.samples import detect_drift


def tables(n_ref: int, n_cur: int, shift: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    def make(n: int, seed: int, drift: bool) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = rng.normal(1.0 if drift else 0.0, 1, n)
        x[rng.random(n) < 0.05] = np.nan
        return pd.DataFrame(
            {
                "x": x,
                "flag": rng.integers(0, 2, n) if not drift else (rng.random(n) < 0.8).astype(int),
                "level": rng.integers(0, 4, n),
                "plan": rng.choice(["basic", "plus", "pro"], n).astype(object),
            }
        )

    return make(n_ref, 1, False), make(n_cur, 2, shift)


def test_large_reference_uses_effect_sizes_like_evidently():
    ref, cur = tables(5000, 1000, shift=True)
    result = detect_drift(ref, cur)
    x = result.column("x")
    assert (x.statistic, x.threshold) == ("wasserstein_normed", 0.1)
    finite_ref, finite_cur = ref["x"].dropna(), cur["x"].dropna()
    expected = sps.wasserstein_distance(finite_ref, finite_cur) / np.std(finite_ref)
    assert x.value == pytest.approx(expected) and x.drift_detected
    assert x.missing_rate["reference"] == pytest.approx(ref["x"].isna().mean())
    # Few distinct values: Jensen-Shannon on value counts, as for categories.
    assert result.column("flag").statistic == "jensen_shannon"
    assert result.column("level").statistic == "jensen_shannon"
    assert result.column("plan").statistic == "jensen_shannon"
    assert result.column("flag").drift_detected and not result.column("plan").drift_detected
    assert result.number_of_drifted_columns == 2 and result.dataset_drift  # 2 of 4 >= 50%


def test_small_reference_uses_p_value_tests_like_evidently():
    ref, cur = tables(800, 300, shift=True)
    result = detect_drift(ref, cur)
    x = result.column("x")
    assert x.statistic == "ks" and x.threshold == 0.05
    assert x.value == pytest.approx(sps.ks_2samp(ref["x"].dropna(), cur["x"].dropna()).pvalue)
    assert x.drift_detected
    assert result.column("flag").statistic == "z"
    assert result.column("level").statistic == "chi_squared"
    plan = result.column("plan")
    assert plan.statistic == "chi_squared" and not plan.drift_detected
    counts_ref = ref["plan"].value_counts().sort_index()
    counts_cur = cur["plan"].value_counts().sort_index()
    expected = sps.chisquare(counts_cur, counts_ref * len(cur) / len(ref)).pvalue
    assert plan.value == pytest.approx(expected)


def test_no_drift_between_samples_of_one_distribution():
    ref, cur = tables(5000, 2000, shift=False)
    result = detect_drift(ref, cur)
    assert result.number_of_drifted_columns == 0 and not result.dataset_drift


def test_new_categories_and_out_of_range_are_reported():
    ref = pd.DataFrame({"plan": ["a", "b"] * 1000, "x": np.linspace(0, 1, 2000)})
    cur = pd.DataFrame({"plan": ["a", "c", "c", None] * 100, "x": np.linspace(0.5, 2, 400)})
    result = detect_drift(ref, cur)
    plan = result.column("plan")
    assert plan.unseen == 200 and plan.drift_detected
    assert plan.missing_rate["current"] == 0.25
    x = result.column("x")
    assert x.out_of_range == int((cur["x"] > 1).sum())
    assert x.mean["current"] == pytest.approx(cur["x"].mean())


def test_method_threshold_and_columns_options():
    ref, cur = tables(5000, 1000, shift=True)
    result = detect_drift(ref, cur, columns=["x", "plan"], method="psi", threshold=0.5)
    assert [c.column for c in result.columns] == ["x", "plan"]
    assert all(c.statistic == "psi" and c.threshold == 0.5 for c in result.columns)
    # KS is not defined for categories: they keep their default.
    result = detect_drift(ref, cur, method="ks")
    assert result.column("x").statistic == "ks"
    assert result.column("plan").statistic == "jensen_shannon"


def test_a_column_empty_on_one_side_drifts():
    ref = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0)})
    cur = pd.DataFrame({"x": [np.nan] * 10, "y": np.arange(10.0)})
    x = detect_drift(ref, cur).column("x")
    assert x.value is None and x.drift_detected
    assert x.missing_rate["current"] == 1.0


@pytest.mark.parametrize(
    "reference,current,columns,message",
    [
        (pd.DataFrame({"x": []}), pd.DataFrame({"x": [1]}), None, "reference data has no rows"),
        (
            pd.DataFrame({"x": [1]}),
            pd.DataFrame({"y": [1]}),
            None,
            "current data has no column 'x'",
        ),
        (pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [1]}), ["z"], "reference data has no column"),
        (pd.DataFrame({"x": [1.0, 2]}), pd.DataFrame({"x": ["1", "oops"]}), None, "non-numeric"),
        ([1, 2], pd.DataFrame({"x": [1]}), None, "must be a table"),
    ],
)
def test_bad_input_is_a_validation_error(reference, current, columns, message):
    with pytest.raises(ValidationError, match=message):
        detect_drift(reference, current, columns=columns)


def test_unknown_method_is_a_validation_error():
    ref, cur = tables(50, 50, shift=False)
    with pytest.raises(ValidationError, match="unknown drift method"):
        detect_drift(ref, cur, method="nope")


def test_result_json_is_strict_and_complete():
    ref, cur = tables(2000, 500, shift=True)
    body = detect_drift(ref, cur).to_dict()
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert set(body) >= {"dataset_drift", "share_of_drifted_columns", "columns", "drift_share"}
    x = body["columns"]["x"]
    assert set(x) >= {"statistic", "value", "threshold", "drift_detected", "histogram"}
    assert len(x["histogram"]["reference"]) == len(x["histogram"]["edges"]) - 1
    assert sum(x["histogram"]["current"]) == pytest.approx(1.0)


def test_html_report_is_self_contained_with_a_chart_per_feature():
    ref, cur = tables(2000, 500, shift=True)
    result = detect_drift(ref, cur)
    html = render(result, reference_name="train.csv", current_name="<today>.csv")
    assert html.startswith("<!DOCTYPE html>")
    assert "Dataset drift detected: 2 of 4 columns drifted" in html
    assert html.count("<svg") == 4
    assert "&lt;today&gt;.csv" in html  # names are escaped
    # Nothing to fetch: no scripts, no external links or images.
    assert "<script" not in html
    assert not re.search(r"(src|href)=['\"]?https?:", html)
    for column in ("x", "flag", "level", "plan"):
        assert f"<td>{column}</td>" in html


def test_identifiers_are_skipped_and_iso_date_strings_are_dates():
    from mloop.data.churn import generate_churn

    reference = generate_churn(600, seed=1)
    current = generate_churn(300, seed=2)
    result = detect_drift(reference, current)
    assert "customer_id" in result.skipped
    assert "customer_id" not in {c.column for c in result.columns}
    assert result.to_dict()["skipped"]["customer_id"].startswith("every value is distinct")
    assert result.column("signup_date").kind == "date"
    chosen = detect_drift(reference, current, columns=["customer_id"])
    assert [c.column for c in chosen.columns] == ["customer_id"] and not chosen.skipped
