"""A model's feature contract (`features.yaml`) compiled against its input columns.

`ContractCheck` keeps only the rules that can fail at serving (a range or an allowed set on a
column the model takes, not `used_in: training`) and checks validated column arrays with one
numpy or pandas operation per rule: the same code for an HTTP request (`InputSchema.validate`)
and a batch file's chunk (`table.check_chunk`). Per-row Python work only happens for rows
that break a rule, to word the reason. A rule with policy `reject` refuses the row (a 422 over
HTTP, the rejects file in batch scoring); `count` accepts it and flags it (`Flags`: counted in
`mloop_feature_out_of_range_total`, written on the prediction log).

`check_lists` is the same check on a few rows' validated values as Python lists (what
`InputSchema` keeps for a one-row request): plain comparisons and set lookups, no numpy or
pandas call per rule, the same violations and messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import ValidationError
from mloop.features.contract import FeatureContract, FeatureRule, Violation

REJECT = "reject"
COUNT = "count"


@dataclass(frozen=True)
class _Compiled:
    index: int  # the column's position in the schema
    rule: FeatureRule
    policy: str
    allowed: tuple[Any, ...] | None
    allowed_text: frozenset[str] | None


class Flags:
    """Rows accepted although they break a `count` rule: per row its reasons (or None)."""

    __slots__ = ("reasons", "features")

    def __init__(self, reasons: np.ndarray, features: Counter[str]) -> None:
        self.reasons = reasons  # object array, one entry per row: "a; b" or None
        self.features = features  # feature -> rows flagged on it

    def take(self, positions: Sequence[int] | np.ndarray) -> Flags | None:
        """The flags of the rows at `positions` (None when none of them is flagged)."""
        reasons = self.reasons[np.asarray(positions, dtype=np.intp)]
        if not any(r is not None for r in reasons):
            return None
        return Flags(reasons, self.features)  # the counts stay the request's


@dataclass
class Outcome:
    """What the rules found in a chunk: rows to refuse (with reasons) and rows to flag."""

    rejected: np.ndarray | None  # bool per row, None when no row is refused
    reasons: np.ndarray | None  # object per row: the refusal reason of refused rows
    flags: Flags | None
    violations: list[Violation]  # the first violation of each refused row, in row order


class ContractCheck:
    """The serving side of a `FeatureContract` for one model's input columns."""

    def __init__(self, contract: FeatureContract, names: Sequence[str]) -> None:
        self.contract = contract
        position = {name: i for i, name in enumerate(names)}
        compiled = []
        for rule in contract.features:
            if rule.used_in == "training" or rule.name not in position:
                continue
            if rule.min is None and rule.max is None and rule.allowed is None:
                continue
            allowed = tuple(rule.allowed) if rule.allowed is not None else None
            text = frozenset(str(a) for a in allowed) if allowed is not None else None
            policy = contract.policy_of(rule)
            compiled.append(_Compiled(position[rule.name], rule, policy, allowed, text))
        self.rules = tuple(compiled)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def check(self, arrays: Sequence[Any], row_offset: int = 0) -> Flags | None:
        """Raise ValidationError (422) at the first row breaking a `reject` rule; the flags of
        rows breaking `count` rules otherwise (None when every row keeps every rule)."""
        return self._verdict(self.outcome(arrays), row_offset)

    def plain(self, texts: Sequence[bool]) -> bool:
        """Whether `check_lists` checks these columns (`texts`: per column, whether it holds
        strings): every `allowed` rule is on a text column (numpy decides the others)."""
        return all(item.allowed is None or texts[item.index] for item in self.rules)

    def check_lists(
        self,
        columns: Sequence[list[Any]],
        numbers: Sequence[Callable[[list[Any]], list[Any]] | None],
        row_offset: int = 0,
    ) -> Flags | None:
        """`check` on validated values as one Python list per column (nulls as None).

        `numbers`: per column, a function giving a number column's values as its typed array
        would hold them (`array.tolist()`: NaN for nulls), None for the other columns; ranges
        apply to number columns only, as in `check`.
        """
        rows = len(columns[0]) if columns else 0
        found: list[tuple[_Compiled, list[int], list[Any], str, Any]] = []
        for item in self.rules:
            values = columns[item.index]
            rule = item.rule
            number = numbers[item.index]
            if number is not None and (rule.min is not None or rule.max is not None):
                items = number(values)
                floats = [float(x) for x in items]  # NaN compares false: nulls never break
                if rule.min is not None:
                    where = [i for i, x in enumerate(floats) if x < rule.min]
                    if where:
                        found.append((item, where, [items[i] for i in where], "min", rule.min))
                if rule.max is not None:
                    where = [i for i, x in enumerate(floats) if x > rule.max]
                    if where:
                        found.append((item, where, [items[i] for i in where], "max", rule.max))
            if item.allowed is not None:
                text = item.allowed_text
                where = [i for i, v in enumerate(values) if v is not None and v not in text]
                if where:
                    shown = [values[i] for i in where]
                    found.append((item, where, shown, "allowed", item.allowed))
        return self._verdict(self._collect(rows, found), row_offset)

    def _verdict(self, outcome: Outcome, row_offset: int) -> Flags | None:
        if outcome.violations:
            first = outcome.violations[0]
            raise ValidationError(
                f"row {row_offset + first.row}: {first.message()}",
                hint="the model's features.yaml declares this bound; send a value inside it",
            )
        return outcome.flags

    def outcome(self, arrays: Sequence[Any], skip: np.ndarray | None = None) -> Outcome:
        """Check every rule on the columns (`skip`: rows already refused, not looked at)."""
        rows = len(arrays[0]) if arrays else 0
        found: list[tuple[_Compiled, list[int], list[Any], str, Any]] = []
        for item in self.rules:
            values = arrays[item.index]
            for mask, kind, bound in _breaks(item, values):
                if skip is not None:
                    mask = mask & ~skip
                if not mask.any():
                    continue
                where = np.flatnonzero(mask)
                found.append((item, where.tolist(), _values(values, where), kind, bound))
        return self._collect(rows, found)

    @staticmethod
    def _collect(
        rows: int, found: list[tuple[_Compiled, list[int], list[Any], str, Any]]
    ) -> Outcome:
        """The outcome of the broken rules, in rule order: (rule, rows, values, kind, bound)."""
        rejected: np.ndarray | None = None
        reasons: np.ndarray | None = None
        flag_reasons: np.ndarray | None = None
        counts: Counter[str] = Counter()
        firsts: dict[int, Violation] = {}
        for item, where, shown, kind, bound in found:
            violations = [
                Violation(item.rule.name, r, v, kind, bound, item.policy)  # type: ignore[arg-type]
                for r, v in zip(where, shown, strict=True)
            ]
            if item.policy == REJECT:
                if rejected is None:
                    rejected = np.zeros(rows, dtype=bool)
                    reasons = np.full(rows, None, dtype=object)
                for violation in violations:
                    if not rejected[violation.row]:
                        reasons[violation.row] = violation.message()  # type: ignore[index]
                        firsts[violation.row] = violation
                rejected[where] = True
            else:
                if flag_reasons is None:
                    flag_reasons = np.full(rows, None, dtype=object)
                counts[item.rule.name] += len(where)
                for violation in violations:
                    old = flag_reasons[violation.row]
                    text = violation.message()
                    flag_reasons[violation.row] = text if old is None else f"{old}; {text}"
        flags = Flags(flag_reasons, counts) if flag_reasons is not None else None
        violations = [firsts[r] for r in sorted(firsts)]
        return Outcome(rejected, reasons, flags, violations)


def contract_check(contract: FeatureContract | None, names: Sequence[str]) -> ContractCheck | None:
    """The compiled check, or None when the contract has no rule that can fail at serving."""
    if contract is None:
        return None
    check = ContractCheck(contract, names)
    return check if check else None


# Up to this many rows an `allowed` rule on text looks each value up in a Python set: pandas'
# `isin` on Arrow strings builds arrays of the allowed values per call (about 0.5 ms, the
# largest share of a churn request's time on the event loop).
_SET_ROWS = 1024


def _breaks(item: _Compiled, values: Any):
    """(row mask, rule kind, bound) for each way the column breaks the rule."""
    rule = item.rule
    if rule.min is not None or rule.max is not None:
        numbers = _numbers(values)
        if numbers is not None:
            with np.errstate(invalid="ignore"):
                if rule.min is not None:
                    yield numbers < rule.min, "min", rule.min
                if rule.max is not None:
                    yield numbers > rule.max, "max", rule.max
    if item.allowed is not None:
        series = pd.Series(values, copy=False) if not isinstance(values, pd.Series) else values
        null = series.isna().to_numpy()
        if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
            text = item.allowed_text
            if len(series) <= _SET_ROWS:  # a serving batch: no Arrow arrays built per call
                texts = (str(v) in text for v in series.tolist())
                inside = np.fromiter(texts, dtype=bool, count=len(series))
            else:
                inside = series.astype("str").isin(text).to_numpy()
        else:
            inside = series.isin(list(item.allowed)).to_numpy()
        yield ~inside & ~null, "allowed", item.allowed


def _numbers(values: Any) -> np.ndarray | None:
    """float64 values of a numeric column (NaN where null), None for other columns."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(np.float64, copy=False)
    dtype = getattr(values, "dtype", None)
    if (
        isinstance(values, pd.Series | pd.api.extensions.ExtensionArray)
        and pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
    ):
        return np.asarray(pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan))
    return None


def _values(values: Any, where: np.ndarray) -> list[Any]:
    """The offending values as Python scalars (for the reasons)."""
    taken = values.iloc[where] if isinstance(values, pd.Series) else values[where]
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(taken, dtype=object)]
