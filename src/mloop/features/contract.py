"""features.yaml: the declared contract between training, serving and batch scoring.

For each feature: its type, whether it may be null, its range or allowed values, unit,
description, where it is used (training, serving or both), and the Feast feature view it comes
from. Loaded strictly (an unknown key or a bad type is a ValidationError naming the key),
inferred from a frame as a first version, and checked against rows with `check_rows`
(vectorised, one pass per feature) by serving and batch scoring.

    version: 1
    target: churned
    entity_key: customer_id
    policy: reject            # or count: accept out-of-contract values and count them
    features:
      tenure_months: {type: integer, min: 0, max: 120, unit: months}
      plan: {type: category, allowed: [basic, pro]}
"""

from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mloop.errors import ConfigError, ValidationError
from mloop.features.spec import FeatureSpec, _looks_like_dates

Policy = Literal["reject", "count"]
FeatureType = Literal["number", "integer", "string", "category", "boolean", "date"]
UsedIn = Literal["both", "training", "serving"]
CONTRACT_ARTIFACT = "features.yaml"
FORMAT_VERSION = 1
MAX_CATEGORIES = 20  # a text column with at most this many values is inferred as a category
_CATEGORY_SHARE = 0.5  # ... and only when distinct values are at most this share of the rows
_BOOL_ARRAY = np.array(["true", "false", "1", "0", "1.0", "0.0", "yes", "no"])
_RANGED = ("number", "integer")
_SMALL = 256  # up to this many rows, dates are checked value by value (pandas costs ~1 ms)


@dataclass(frozen=True)
class FeatureRule:
    """What one feature's values must be."""

    name: str
    type: FeatureType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[object, ...] | None = None
    unit: str | None = None
    description: str | None = None
    used_in: UsedIn = "both"
    source: str | None = None  # Feast feature view ("view:feature") when it comes from one
    policy: Policy | None = None  # None: the contract's default policy

    def to_dict(self) -> dict[str, object]:
        """The YAML mapping of this rule (without its name; defaults left out)."""
        out: dict[str, object] = {"type": self.type}
        if self.nullable:
            out["nullable"] = True
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is not None:
                out[key] = _plain_number(value)
        if self.allowed is not None:
            out["allowed"] = [_plain(v) for v in self.allowed]
        for key in ("unit", "description", "source", "policy"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.used_in != "both":
            out["used_in"] = self.used_in
        return out


@dataclass(frozen=True)
class FeatureContract:
    """The features of a project, declared once: what training, serving and batch enforce."""

    features: tuple[FeatureRule, ...]
    target: str | None = None
    entity_key: str | None = None  # e.g. "customer_id" for Feast lookups
    policy: Policy = "reject"
    derived: tuple[dict, ...] = ()  # the transformers that ship inside the model
    feast: dict | None = None  # {"repo": PATH, "feature_service" or "features": [...]}
    examples: tuple[dict, ...] = ()  # example input rows (mloop.testing predicts on them)
    tests: dict | None = None  # {"invariance": [...], "directional": [...]}: mloop.testing
    _by_name: dict[str, FeatureRule] = field(default=None, init=False, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.features})

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.features]

    def rule(self, name: str) -> FeatureRule | None:
        """The rule for feature `name`, or None when the contract does not declare it."""
        return self._by_name.get(name)

    def serving_features(self) -> list[FeatureRule]:
        """The rules a request (or a batch file) is checked against: used in serving or both."""
        return [r for r in self.features if r.used_in in ("both", "serving")]

    def training_features(self) -> list[FeatureRule]:
        """The rules training data is checked against: used in training or both."""
        return [r for r in self.features if r.used_in in ("both", "training")]

    def policy_of(self, rule: FeatureRule) -> Policy:
        return rule.policy or self.policy

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"version": FORMAT_VERSION}
        if self.target is not None:
            out["target"] = self.target
        if self.entity_key is not None:
            out["entity_key"] = self.entity_key
        out["policy"] = self.policy
        out["features"] = {r.name: r.to_dict() for r in self.features}
        if self.derived:
            out["derived"] = [dict(d) for d in self.derived]
        if self.feast is not None:
            out["feast"] = dict(self.feast)
        if self.examples:
            out["examples"] = [dict(row) for row in self.examples]
        if self.tests is not None:
            out["tests"] = dict(self.tests)
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "features.yaml") -> FeatureContract:
        """Validate a parsed mapping; errors name `source` and the dotted key."""
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"{source}: the top level must be a mapping, got {type(data).__name__}",
                hint="keys: version, target, entity_key, policy, features, derived, feast",
            )
        try:
            model = _ContractModel.model_validate(dict(data))
        except pydantic.ValidationError as exc:
            raise ValidationError(_describe(exc, source), hint=_hint(exc)) from None
        rules = tuple(
            FeatureRule(
                name=str(name),
                type=r.type,
                nullable=r.nullable,
                min=r.min,
                max=r.max,
                allowed=tuple(r.allowed) if r.allowed is not None else None,
                unit=r.unit,
                description=r.description,
                used_in=r.used_in,
                source=r.source,
                policy=r.policy,
            )
            for name, r in model.features.items()
        )
        return cls(
            features=rules,
            target=model.target,
            entity_key=model.entity_key,
            policy=model.policy,
            derived=tuple(d.model_dump(by_alias=True, exclude_none=True) for d in model.derived),
            feast=model.feast.model_dump(exclude_none=True) if model.feast else None,
            examples=tuple(dict(row) for row in model.examples),
            tests=model.tests.model_dump(exclude_defaults=True) if model.tests else None,
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, source: str = "features.yaml") -> FeatureContract:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValidationError(f"{source}: invalid YAML{where}: {problem}") from None
        return cls.from_dict(raw if raw is not None else {}, source=source)

    @classmethod
    def load(cls, path: str | Path) -> FeatureContract:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"feature contract {str(path)!r} does not exist",
                hint="write a first one with: mloop features infer DATA > features.yaml",
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the feature contract: {exc}") from None
        return cls.from_yaml(text, source=str(path))

    def dump(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    def with_derived(self, derived: Iterable[dict]) -> FeatureContract:
        """A copy listing `derived` as the transformers that ship inside the model."""
        return FeatureContract(
            features=self.features,
            target=self.target,
            entity_key=self.entity_key,
            policy=self.policy,
            derived=tuple(dict(d) for d in derived),
            feast=self.feast,
            examples=self.examples,
            tests=self.tests,
        )

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        target: str | None = None,
        entity_key: str | None = None,
        policy: Policy = "reject",
    ) -> FeatureContract:
        """A first contract from data: ranges from min/max, allowed values for few categories.

        The target and the entity key are named, not declared as features.
        """
        for name, role in ((target, "target"), (entity_key, "entity key")):
            if name is not None and name not in frame.columns:
                raise ValidationError(
                    f"the {role} column {name!r} is not in the data",
                    hint=f"columns available: {', '.join(map(str, frame.columns))}",
                )
        rules = [
            _infer_rule(str(col), frame[col])
            for col in frame.columns
            if col not in (target, entity_key)
        ]
        return cls(features=tuple(rules), target=target, entity_key=entity_key, policy=policy)


def _infer_rule(name: str, col: pd.Series) -> FeatureRule:
    nullable = bool(col.isna().any())
    values = col.dropna()
    if pd.api.types.is_bool_dtype(col):
        return FeatureRule(name, "boolean", nullable=nullable)
    if pd.api.types.is_numeric_dtype(col):
        integral = pd.api.types.is_integer_dtype(col) or (
            not values.empty and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        )
        lo = float(values.min()) if not values.empty else None
        hi = float(values.max()) if not values.empty else None
        return FeatureRule(name, "integer" if integral else "number", nullable, lo, hi)
    if pd.api.types.is_datetime64_any_dtype(col) or _looks_like_dates(col):
        return FeatureRule(name, "date", nullable=nullable)
    distinct = values.astype(str).unique()
    few = len(distinct) <= min(MAX_CATEGORIES, max(2, len(values) * _CATEGORY_SHARE))
    if len(distinct) and few:
        return FeatureRule(name, "category", nullable, allowed=tuple(sorted(distinct)))
    return FeatureRule(name, "string", nullable=nullable)


def derived_from_spec(spec: FeatureSpec) -> list[dict]:
    """The transformers `build_preprocessor(spec)` ships inside the model, one entry a kind."""
    out = []
    if spec.numeric:
        out.append({"name": "numeric", "from": list(spec.numeric), "kind": "impute,clip,scale"})
    if spec.categorical:
        out.append({"name": "categorical", "from": list(spec.categorical), "kind": "onehot"})
    if spec.date:
        out.append({"name": "date", "from": list(spec.date), "kind": "date_parts"})
    return out


@dataclass(frozen=True)
class Violation:
    """One value that breaks the contract."""

    feature: str
    row: int  # 0-based position in the checked frame
    value: object
    rule: str  # "min", "max", "allowed", "type", "null"
    bound: object
    policy: Policy

    def message(self) -> str:
        value = _show(self.value)
        if self.rule == "min":
            return f"{self.feature}={value} is below the declared minimum {_show(self.bound)}"
        if self.rule == "max":
            return f"{self.feature}={value} is above the declared maximum {_show(self.bound)}"
        if self.rule == "allowed":
            allowed = ", ".join(_show(v) for v in self.bound)  # type: ignore[union-attr]
            return f"{self.feature}={value} is not one of the allowed values [{allowed}]"
        if self.rule == "null":
            return f"{self.feature} is null, and the contract does not allow nulls"
        return f"{self.feature}={value} is not of the declared type {self.bound}"

    def to_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "row": self.row,
            "value": _plain(self.value),
            "rule": self.rule,
            "bound": [_plain(v) for v in self.bound]
            if isinstance(self.bound, tuple)
            else _plain(self.bound),
            "policy": self.policy,
            "message": self.message(),
        }


def check_rows(
    contract: FeatureContract,
    frame: pd.DataFrame,
    rules: Iterable[FeatureRule] | None = None,
) -> list[Violation]:
    """Every value of `frame` that breaks its feature's rule, by feature then row.

    Checks `rules` (default: the contract's serving features) on the columns present; a
    declared column absent from the frame is not reported here (the input schema does that).
    Nulls are checked only for nullability; one violation per value, the first rule broken.
    """
    out: list[Violation] = []
    for rule in contract.serving_features() if rules is None else rules:
        if rule.name in frame.columns:
            out.extend(_check_column(rule, frame[rule.name], contract.policy_of(rule)))
    return out


def _check_column(rule: FeatureRule, col: pd.Series, policy: Policy) -> list[Violation]:
    raw = col.to_numpy(dtype=object)
    out = []
    for name, (mask, bound) in violation_masks(rule, col).items():
        for row in np.flatnonzero(mask):
            out.append(Violation(rule.name, int(row), raw[row], name, bound, policy))
    out.sort(key=lambda v: v.row)
    return out


def violation_masks(rule: FeatureRule, col: pd.Series) -> dict[str, tuple[np.ndarray, object]]:
    """Per rule broken ("null", "type", "min", "max", "allowed"): a row mask and its bound.

    Vectorised on numpy arrays (a fixed cost of tens of microseconds a column, for serving's
    small batches); each value is counted under the first rule it breaks, in that order. The
    training validation runs these same masks as pandera checks, so both sides agree.
    """
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    raw = col.to_numpy(dtype=float, na_value=np.nan) if numeric else col.to_numpy(dtype=object)
    null = np.isnan(raw) if numeric else pd.isna(raw)
    present = ~null
    bad: dict[str, tuple[np.ndarray, object]] = {}
    if not rule.nullable:
        bad["null"] = (null, None)
    wrong = np.zeros(len(raw), dtype=bool)
    if rule.type in _RANGED:
        numbers = raw if numeric else _as_numbers(raw)
        wrong = present & np.isnan(numbers)
        if rule.type == "integer":
            wrong = wrong | (present & ~wrong & (np.mod(np.nan_to_num(numbers), 1) != 0))
        bad["type"] = (wrong, rule.type)
        ok = present & ~wrong
        if rule.min is not None:
            bad["min"] = (ok & (numbers < rule.min), rule.min)
        if rule.max is not None:
            bad["max"] = (ok & (numbers > rule.max), rule.max)
    elif rule.type == "boolean" and not pd.api.types.is_bool_dtype(col):
        wrong = present & ~np.isin(np.char.lower(raw.astype(str)), _BOOL_ARRAY)
        bad["type"] = (wrong, "boolean")
    elif rule.type == "date" and not pd.api.types.is_datetime64_any_dtype(col):
        wrong = present & ~_are_dates(raw, present)
        bad["type"] = (wrong, "date")
    if rule.allowed is not None:
        inside = _allowed_mask(col, raw, numeric, rule.allowed)
        bad["allowed"] = (present & ~wrong & ~inside, tuple(rule.allowed))
    return bad


def _are_dates(raw: np.ndarray, present: np.ndarray) -> np.ndarray:
    """True where the value is an ISO 8601 date or date-time (or already a datetime)."""
    if len(raw) > _SMALL:
        values = np.where(present, raw, None)
        return ~np.asarray(pd.isna(pd.to_datetime(values, errors="coerce", format="ISO8601")))
    return np.fromiter((_is_date(v) for v in raw), bool, len(raw))  # small: no pandas cost


def _is_date(value: object) -> bool:
    if isinstance(value, datetime.date):
        return True
    try:
        datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _as_numbers(raw: np.ndarray) -> np.ndarray:
    """Floats of an object array, NaN where a value is not a number (nor is a boolean here)."""
    numbers = np.array(pd.to_numeric(raw, errors="coerce"), dtype=float)
    is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in raw), bool, len(raw))
    numbers[is_bool] = np.nan
    return numbers


def _allowed_mask(
    col: pd.Series, raw: np.ndarray, numeric: bool, allowed: tuple[object, ...]
) -> np.ndarray:
    """True where the value is one of `allowed`: numbers compare as numbers, the rest as text."""
    texts, numbers = _allowed_sets(allowed)
    if pd.api.types.is_bool_dtype(col):
        return np.where(col.to_numpy(dtype=bool), "true" in texts, "false" in texts)
    if numeric:
        return np.isin(raw, numbers)
    inside = np.isin(raw.astype(str), texts)
    if len(numbers):
        inside = inside | np.isin(_as_numbers(raw), numbers)
    return inside


@functools.lru_cache(maxsize=1024)
def _allowed_sets(allowed: tuple[object, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The allowed values as text (booleans lower-case too) and, where numeric, as floats."""
    texts = {str(v) for v in allowed} | {str(v).lower() for v in allowed if isinstance(v, bool)}
    numbers = pd.to_numeric(pd.Series(allowed, dtype=object), errors="coerce").dropna()
    return np.array(sorted(texts), dtype=str), numbers.to_numpy(dtype=float)


def _plain(value: object) -> object:
    """A YAML/JSON-safe Python scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _plain_number(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def _plain_number(value: float) -> int | float:
    return int(value) if math.isfinite(value) and float(value) == int(value) else float(value)


def _show(value: object) -> str:
    value = _plain(value)
    return repr(value) if isinstance(value, str) else str(value)


# --- the strict models behind features.yaml -------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _RuleModel(_Strict):
    type: FeatureType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    unit: str | None = None
    description: str | None = None
    used_in: UsedIn = "both"
    source: str | None = None
    policy: Policy | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _RuleModel:
        if (self.min is not None or self.max is not None) and self.type not in _RANGED:
            raise ValueError(f"min/max apply to number and integer features, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value")
        if self.source is not None and ":" not in self.source:
            raise ValueError(f"source {self.source!r} must be 'feature_view:feature'")
        return self


class _DerivedModel(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    from_: str | list[str] = Field(alias="from")
    kind: str
    description: str | None = None


class _FeastModel(_Strict):
    repo: str
    project: str | None = None
    feature_service: str | None = None
    features: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _FeastModel:
        if (self.feature_service is None) == (self.features is None):
            raise ValueError("give exactly one of feature_service or features")
        return self


class _InvarianceModel(_Strict):
    feature: str
    values: list[Any] = Field(min_length=2)


class _DirectionalModel(_Strict):
    feature: str
    increase: bool = True
    expect: Literal["up", "down"]


class _TestsModel(_Strict):
    """Behaviour checks on the model (run by `mloop.testing`): changing an invariant feature
    among its values leaves the prediction alone; raising a directional one moves it."""

    invariance: list[_InvarianceModel] = Field(default_factory=list)
    directional: list[_DirectionalModel] = Field(default_factory=list)


class _ContractModel(_Strict):
    version: Literal[1] = 1
    target: str | None = None
    entity_key: str | None = None
    policy: Policy = "reject"
    features: dict[str, _RuleModel] = Field(min_length=1)
    derived: list[_DerivedModel] = Field(default_factory=list)
    feast: _FeastModel | None = None
    examples: list[dict[str, Any]] = Field(default_factory=list)
    tests: _TestsModel | None = None

    @model_validator(mode="after")
    def _roles(self) -> _ContractModel:
        for role, name in (("target", self.target), ("entity_key", self.entity_key)):
            if name is not None and name in self.features:
                raise ValueError(f"{role} {name!r} is also declared as a feature")
        checks = [*self.tests.invariance, *self.tests.directional] if self.tests else []
        for check in checks:
            if check.feature not in self.features:
                raise ValueError(f"tests: feature {check.feature!r} is not declared")
        return self


def _describe(exc: pydantic.ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"{source}: unknown key {loc!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {loc or '(top level)'}: {msg}")
    return "; ".join(problems)


def _hint(exc: pydantic.ValidationError) -> str | None:
    for err in exc.errors():
        if err["type"] == "extra_forbidden":
            loc = err["loc"]
            if len(loc) == 1:
                return f"top-level keys: {', '.join(_ContractModel.model_fields)}"
            if loc[0] == "features":
                return f"keys of a feature: {', '.join(_RuleModel.model_fields)}"
            if loc[0] == "feast":
                return f"keys of feast: {', '.join(_FeastModel.model_fields)}"
            if loc[0] == "derived":
                return "keys of a derived entry: name, from, kind, description"
    return None
