"""Validation of training data against its feature contract, with pandera, before training.

One pandera DataFrameSchema per contract: every declared column present (schema), its type,
nulls, range and allowed values (the same masks `contract.check_rows` uses at serving), no
constant column, no feature that predicts the label almost perfectly (leakage), a label that is
not a single class and not badly imbalanced, no duplicate rows; `check_overlap` adds rows shared
by the train and test splits. Errors stop training; warnings are recorded on the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mloop.errors import ValidationError
from mloop.features.contract import MAX_CATEGORIES, FeatureContract, FeatureRule, Violation
from mloop.features.contract import violation_masks as _masks
from mloop.features.report_html import render_html

Level = Literal["error", "warning"]
EXAMPLES = 5  # example rows kept per failing check
LEAKAGE_AUC = 0.99  # a single feature separating the label this well is leakage
LEAKAGE_CORR = 0.99  # ... or correlating this well with a numeric target
MIN_CLASS_SHARE = 0.05  # a class below this share of the rows is a label-balance warning
_ID_SHARE = 0.5  # a text column with more distinct values than this share is an id, not leakage
LEVELS: dict[str, Level] = {
    "schema": "error",
    "null": "error",
    "type": "error",
    "min": "error",
    "max": "error",
    "allowed": "error",
    "label_leakage": "error",
    "label_single_class": "error",
    "label_balance": "warning",
    "duplicate_rows": "warning",
    "constant_column": "warning",
    "undeclared_column": "warning",
    "train_test_overlap": "warning",
}
_CHECK_NAMES = {"not_nullable": "null", "column_in_dataframe": "schema"}


@dataclass
class CheckResult:
    """One failing check: what, on which column, how many rows, and a few example rows."""

    check: str
    level: Level
    column: str | None
    count: int
    message: str
    examples: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "level": self.level,
            "column": self.column,
            "count": self.count,
            "message": self.message,
            "examples": self.examples,
        }


@dataclass
class ValidationReport:
    """Every failing check of one data file; `ok` when none is an error."""

    source: str
    rows: int
    columns: int
    checks_run: list[str] = field(default_factory=list)
    failures: list[CheckResult] = field(default_factory=list)
    path: Path | None = None  # the JSON report, once written

    @property
    def errors(self) -> list[CheckResult]:
        return [c for c in self.failures if c.level == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.failures if c.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, result: CheckResult | None, check: str) -> None:
        """Record that `check` ran, and its failure when it failed."""
        if check not in self.checks_run:
            self.checks_run.append(check)
        if result is not None:
            self.failures.append(result)

    def as_warnings(self) -> ValidationReport:
        """This report with every error downgraded (data checked without a declared contract)."""
        for result in self.failures:
            result.level = "warning"
        return self

    def summary(self) -> str:
        return (
            f"{self.source}: {len(self.errors)} error(s), {len(self.warnings)} warning(s) "
            f"in {self.rows} rows ({len(self.checks_run)} checks)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows": self.rows,
            "columns": self.columns,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checks_run": list(self.checks_run),
            "failures": [c.to_dict() for c in self.failures],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def write(self, directory: str | Path, stem: str = "validation") -> tuple[Path, Path]:
        """Write `<stem>.json` and `<stem>.html` into `directory`; returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / f"{stem}.json"
        html_path = directory / f"{stem}.html"
        json_path.write_text(self.to_json(), encoding="utf-8")
        html_path.write_text(render_html(self), encoding="utf-8")
        self.path = json_path
        return json_path, html_path

    def raise_for_errors(self) -> None:
        """A ValidationError naming the first error and the report file, when any failed."""
        if self.ok:
            return
        first = self.errors[0]
        where = f"; report: {self.path}" if self.path else ""
        raise ValidationError(
            f"training data failed validation: {first.message} "
            f"({len(self.errors)} error(s), {len(self.warnings)} warning(s)){where}",
            hint=f"see the report{(' ' + str(self.path)) if self.path else ''}, fix the data "
            "or the contract (features.yaml), then train again",
        )


def validate_frame(
    frame: pd.DataFrame,
    contract: FeatureContract,
    *,
    target: str | None = None,
    source: str = "data",
    ignore: Iterable[str] = (),
    require_target: bool = True,
) -> ValidationReport:
    """Run the contract's pandera schema and the data checks on a training frame.

    `target` defaults to the contract's; without `require_target`, a frame that lacks it (a
    file to score) skips the label checks. `ignore` names columns that are neither features
    nor the target (ids), so they are not reported as undeclared.
    """
    import pandera.pandas as pa  # lazy: pandera's import costs ~0.25 s, training only

    target = target or contract.target
    if target is not None and not require_target and target not in frame.columns:
        target = None
    report = ValidationReport(source=source, rows=len(frame), columns=len(frame.columns))
    y = frame[target] if target is not None and target in frame.columns else None
    columns: dict[str, pa.Column] = {}
    for rule in contract.training_features():
        masks = _MaskCache(rule)
        checks = [_rule_check(pa, masks, kind) for kind in ("type", "min", "max", "allowed")]
        checks = [c for c in checks if c is not None]
        checks.append(pa.Check(_not_constant, name="constant_column"))
        if y is not None:
            checks.append(pa.Check(_no_leakage(y, rule), name="label_leakage"))
        columns[rule.name] = pa.Column(None, nullable=rule.nullable, required=True, checks=checks)
    if target is not None:
        columns[target] = pa.Column(
            None,
            required=True,
            nullable=False,
            checks=[
                pa.Check(_two_classes, name="label_single_class"),
                pa.Check(_balanced, name="label_balance"),
            ],
        )
    schema = pa.DataFrameSchema(
        columns, checks=[pa.Check(_unique_rows, name="duplicate_rows")], coerce=False
    )
    for check in LEVELS:
        if check != "train_test_overlap":
            report.checks_run.append(check)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for result in _results(exc.failure_cases, frame, contract, y):
            report.failures.append(result)
    known = {*contract.names, *(c for c in (target, contract.entity_key) if c), *ignore}
    undeclared = [str(c) for c in frame.columns if c not in known]
    if undeclared:
        report.failures.append(
            CheckResult(
                "undeclared_column",
                LEVELS["undeclared_column"],
                None,
                len(undeclared),
                f"{len(undeclared)} column(s) not declared in the contract: "
                + ", ".join(undeclared),
                [{"column": c} for c in undeclared[:EXAMPLES]],
            )
        )
    return report


def check_overlap(train: pd.DataFrame, test: pd.DataFrame) -> CheckResult | None:
    """Rows of the test split identical to a training row (a leak into the evaluation)."""
    import pandera.pandas as pa  # lazy: pandera's import costs ~0.25 s, training only

    seen = set(pd.util.hash_pandas_object(train, index=False).to_numpy())
    schema = pa.DataFrameSchema(
        checks=[
            pa.Check(
                lambda df: ~pd.util.hash_pandas_object(df, index=False).isin(seen),
                name="train_test_overlap",
            )
        ]
    )
    try:
        schema.validate(test, lazy=True)
    except pa.errors.SchemaErrors as exc:
        index = sorted(set(exc.failure_cases["index"].dropna()))
        return CheckResult(
            "train_test_overlap",
            LEVELS["train_test_overlap"],
            None,
            len(index),
            f"{len(index)} of {len(test)} test row(s) also appear in the training split",
            _example_rows(test, index),
        )
    return None


class _MaskCache:
    """One rule's violation masks, computed once per column however many checks read them."""

    def __init__(self, rule: FeatureRule) -> None:
        self.rule = rule
        self._for: pd.Series | None = None
        self._masks: dict[str, tuple[np.ndarray, object]] = {}

    def kinds(self) -> set[str]:
        return set(_masks(self.rule, pd.Series([], dtype=object)))

    def get(self, series: pd.Series, kind: str) -> np.ndarray:
        if self._for is not series:
            self._for, self._masks = series, _masks(self.rule, series)
        return self._masks[kind][0]


def _rule_check(pa, masks: _MaskCache, kind: str):
    """A pandera check for one rule kind of a feature (None when its rule declares none)."""
    if kind not in masks.kinds():
        return None

    def passes(series: pd.Series) -> pd.Series:
        return pd.Series(~masks.get(series, kind), index=series.index)

    return pa.Check(passes, name=kind)


def _not_constant(series: pd.Series) -> bool:
    return len(series) < 2 or series.nunique(dropna=False) > 1


def _two_classes(y: pd.Series) -> bool:
    return not _is_label(y) or y.nunique() >= 2


def _balanced(y: pd.Series) -> bool:
    if not _is_label(y) or y.nunique() < 2:
        return True
    return bool(y.value_counts(normalize=True).min() >= MIN_CLASS_SHARE)


def _unique_rows(df: pd.DataFrame) -> pd.Series:
    return ~df.duplicated(keep="first")


def _is_label(y: pd.Series) -> bool:
    """A classification target: text, boolean, or numbers with few integral values."""
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return True
    values = y.dropna().to_numpy(dtype=float)
    return bool(np.all(np.mod(values, 1) == 0)) and y.nunique() <= MAX_CATEGORIES


def _no_leakage(y: pd.Series, rule: FeatureRule) -> Callable[[pd.Series], bool]:
    def passes(series: pd.Series) -> bool:
        return _leakage(series, y, rule) is None

    return passes


def _leakage(x: pd.Series, y: pd.Series, rule: FeatureRule) -> str | None:
    """Why `x` predicts `y` almost perfectly, or None."""
    keep = x.notna() & y.notna()
    x, y = x[keep], y[keep]
    if len(x) < 10 or y.nunique() < 2 or x.nunique() < 2:
        return None
    if rule.type in ("number", "integer"):
        numbers = pd.to_numeric(x, errors="coerce")
        ok = numbers.notna()
        numbers, y_num = numbers[ok], y[ok]
        if numbers.nunique() < 2:
            return None
        if not _is_label(y):
            corr = abs(numbers.corr(pd.to_numeric(y_num, errors="coerce"), method="spearman"))
            return f"rank correlation {corr:.3f} with the target" if corr > LEAKAGE_CORR else None
        if y_num.nunique() == 2:
            positive = y_num == sorted(y_num.unique(), key=str)[-1]
            auc = float(roc_auc_score(positive, numbers))
            auc = max(auc, 1 - auc)
            return f"single-feature AUC {auc:.3f}" if auc > LEAKAGE_AUC else None
        if numbers.nunique() > MAX_CATEGORIES:
            return None
    elif not _is_label(y):
        return None
    groups = x.astype(str)
    distinct = groups.nunique()
    if distinct > max(MAX_CATEGORIES, len(x) * _ID_SHARE):
        return None  # an identifier: unique per row, so "maps" trivially
    if int(y.groupby(groups).nunique().max()) == 1:
        return f"each of its {distinct} values maps to a single label"
    return None


def _results(
    cases: pd.DataFrame, frame: pd.DataFrame, contract: FeatureContract, y: pd.Series | None
) -> list[CheckResult]:
    out = []
    cases = cases.copy()
    cases["check"] = cases["check"].astype(str).map(lambda c: _CHECK_NAMES.get(c, c))
    cases["column"] = cases["column"].where(cases["column"].notna(), None)
    frame_level = cases["schema_context"] == "DataFrameSchema"
    for check, group in cases[frame_level].groupby("check", sort=False):
        if check == "schema":
            for column in group["failure_case"]:
                out.append(
                    CheckResult(
                        "schema",
                        "error",
                        str(column),
                        1,
                        f"declared column {column!r} is not in the data",
                    )
                )
            continue
        index = sorted(set(group["index"].dropna()))
        out.append(
            CheckResult(
                str(check),
                LEVELS.get(str(check), "error"),
                None,
                len(index),
                f"{len(index)} duplicate row(s) (identical to an earlier row)",
                _example_rows(frame, index),
            )
        )
    for (column, check), group in cases[~frame_level].groupby(["column", "check"], sort=False):
        out.append(_column_result(str(column), str(check), group, frame, contract, y))
    order = list(LEVELS)
    out.sort(key=lambda r: (r.level != "error", order.index(r.check) if r.check in order else 99))
    return out


def _column_result(
    column: str,
    check: str,
    group: pd.DataFrame,
    frame: pd.DataFrame,
    contract: FeatureContract,
    y: pd.Series | None,
) -> CheckResult:
    level = LEVELS.get(check, "error")
    rule = contract.rule(column)
    series = frame[column]
    if check == "constant_column":
        value = series.iloc[0] if len(series) else None
        return CheckResult(
            check, level, column, len(series), f"{column} is constant ({_show(value)})"
        )
    if check == "label_leakage" and rule is not None and y is not None:
        why = _leakage(series, y, rule) or "predicts the label"
        return CheckResult(
            check,
            level,
            column,
            len(series),
            f"{column} predicts the label almost perfectly ({why}): a leak, not a feature",
        )
    if check == "label_single_class":
        return CheckResult(
            check, level, column, len(series), f"target {column!r} has a single class"
        )
    if check == "label_balance":
        shares = series.value_counts(normalize=True)
        counts = series.value_counts()
        return CheckResult(
            check,
            level,
            column,
            int(counts.min()),
            f"target {column!r} is imbalanced: class {_show(shares.idxmin())} is "
            f"{shares.min():.1%} of the rows (below {MIN_CLASS_SHARE:.0%})",
            [{"class": _plain(k), "rows": int(v)} for k, v in counts.items()],
        )
    index = sorted(set(group["index"].dropna()))
    if rule is not None and check in ("null", "type", "min", "max", "allowed"):
        mask, bound = _masks(rule, series)[check]
        rows = np.flatnonzero(mask)
        first = rows[0] if len(rows) else (index[0] if index else 0)
        sample = Violation(column, int(first), series.iloc[first], check, bound, "reject")
        count = int(len(rows)) or len(index)
        return CheckResult(
            check,
            level,
            column,
            count,
            f"{count} row(s): {sample.message()}",
            _example_rows(frame, [frame.index[r] for r in rows[:EXAMPLES]] or index),
        )
    return CheckResult(check, level, column, len(index), f"{column}: {check} failed")


def _example_rows(frame: pd.DataFrame, index: list) -> list[dict]:
    out = []
    for label in index[:EXAMPLES]:
        position = int(frame.index.get_loc(label))
        row = {str(k): _plain(v) for k, v in frame.loc[label].items()}
        out.append({"data_row": position + 1, **row})
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _show(value: object) -> str:
    value = _plain(value)
    return repr(value) if isinstance(value, str) else str(value)
