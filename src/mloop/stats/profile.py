"""Reference profiles: what the training data and the model's outputs looked like, in KBs.

A `ReferenceProfile` is logged with every training run (`mloop.registry.profile_store`).
Per numeric (or date) feature it keeps bin edges from reference quantiles with the reference
counts on them, mean, std, quantiles, min, max and the missing count; per categorical feature
the top-K category counts plus `__other__`; and the distributions of the predictions and of
the predicted probability. Live windows count on the *same* edges and categories
(`ReferenceProfile.counts(frame) -> WindowCounts`), so counts from several batches, workers,
replicas or windows merge by plain addition, and drift statistics (`mloop.stats.binned`)
compare two sets of counts without raw rows.

Binning rule (shared by reference and current): a numeric value goes to bin
`searchsorted(edges[1:-1], value, side="right")`, so values beyond the reference min or max
land in the first or last bin *and* are counted as out of range. A categorical value outside
the profiled categories lands in `__other__` and is counted as unseen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import ValidationError
from mloop.stats.columns import (
    NUMERIC_BINS,
    QUANTILES,
    TOP_K,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    profile_column,
)
from mloop.stats.counts import FeatureCounts, WindowCounts
from mloop.stats.kinds import (
    CATEGORICAL,
    DATE,
    NUMERIC,
    categorical_values,
    infer_kind,
    numeric_values,
    score_of,
)

SCHEMA_VERSION = 1
PROBABILITY_EDGES = np.linspace(0.0, 1.0, 11)

__all__ = [
    "CategoricalProfile",
    "FeatureCounts",
    "NumericProfile",
    "ReferenceProfile",
    "WindowCounts",
    "training_profile",
]


@dataclass
class ReferenceProfile:
    """Per-feature reference distributions plus prediction and probability distributions."""

    features: dict[str, FeatureProfile]
    rows: int
    predictions: FeatureProfile | None = None
    probabilities: NumericProfile | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        predictions: Any = None,
        probabilities: Any = None,
        kinds: Mapping[str, str] | None = None,
        bins: int = NUMERIC_BINS,
        top_k: int = TOP_K,
        contract: Any = None,
    ) -> ReferenceProfile:
        """Profile every column of `frame` (kinds inferred from dtypes unless given).

        `predictions` are labels (categorical) or regression values (numeric);
        `probabilities` a vector or a rows x classes matrix (see `features.score_of`).
        `contract`: the project's `FeatureContract` (features.yaml), whose declared types set
        the kinds, min/max the outer bin edges (only values outside the declared range count as
        out of range) and allowed values the categories, in declared order.
        """
        kinds = dict(kinds or {})
        rules = {str(n): contract.rule(str(n)) for n in frame.columns} if contract else {}
        for name, rule in rules.items():
            if rule is not None and rule.type in _CONTRACT_KINDS:
                kinds[name] = _CONTRACT_KINDS[rule.type]
        features = {
            str(name): _declared(
                profile_column(
                    str(name), frame[name], kinds.get(str(name)) or infer_kind(frame[name]),
                    bins=bins, top_k=top_k,
                ),
                rules.get(str(name)),
                frame[name],
            )
            for name in frame.columns
        }  # fmt: skip
        pred_profile = None
        if predictions is not None:
            series = pd.Series(np.asarray(predictions))
            pred_profile = profile_column("prediction", series, infer_kind(series), bins=bins)
        prob_profile = None
        if probabilities is not None:
            prob_profile = NumericProfile.fixed(
                "probability", score_of(probabilities), PROBABILITY_EDGES
            )
        return cls(features, len(frame), pred_profile, prob_profile)

    # -- counting a window -----------------------------------------------------------------------

    def counts(
        self, frame: pd.DataFrame, *, predictions: Any = None, probabilities: Any = None
    ) -> WindowCounts:
        """Counts of `frame` (and of the outputs, when given) on this profile's bins.

        A profiled column absent from `frame` counts as missing on every row; extra columns
        are ignored.
        """
        rows = len(frame)
        features: dict[str, FeatureCounts] = {}
        for name, prof in self.features.items():
            if name not in frame.columns:
                features[name] = FeatureCounts.zeros(
                    len(prof.reference_counts().counts), missing=rows
                )
            elif isinstance(prof, CategoricalProfile):
                features[name] = prof.count_values(categorical_values(frame[name]))
            else:
                features[name] = prof.count_values(numeric_values(frame[name], prof.kind))
        pred = prob = None
        if predictions is not None and self.predictions is not None:
            values = pd.Series(np.asarray(predictions))
            if isinstance(self.predictions, CategoricalProfile):
                pred = self.predictions.count_values(categorical_values(values))
            else:
                pred = self.predictions.count_values(numeric_values(values, NUMERIC))
        if probabilities is not None and self.probabilities is not None:
            prob = self.probabilities.count_values(score_of(probabilities))
        return WindowCounts(rows=rows, features=features, predictions=pred, probabilities=prob)

    def empty_counts(self) -> WindowCounts:
        """A zero window on this profile's bins: the start value for summing live batches."""

        def zero(prof: FeatureProfile | None) -> FeatureCounts | None:
            return (
                None if prof is None else FeatureCounts.zeros(len(prof.reference_counts().counts))
            )

        return WindowCounts(
            rows=0,
            features={name: zero(p) for name, p in self.features.items()},  # type: ignore[misc]
            predictions=zero(self.predictions),
            probabilities=zero(self.probabilities),
        )

    def profile_like(
        self, frame: pd.DataFrame, *, predictions: Any = None, probabilities: Any = None
    ) -> ReferenceProfile:
        """Profile `frame` on this profile's bins and categories, so the two can `merge`.

        Use it to grow a reference from chunks: quantiles of the chunk are interpolated from
        its counts on the shared bins.
        """
        window = self.counts(frame, predictions=predictions, probabilities=probabilities)

        def like(prof: FeatureProfile | None, fc: FeatureCounts | None) -> FeatureProfile | None:
            if prof is None or fc is None:
                return None
            counts = [int(c) for c in fc.counts]
            if isinstance(prof, CategoricalProfile):
                truncated = prof.truncated or fc.outside > 0
                return CategoricalProfile(
                    prof.name, list(prof.categories), counts, fc.present, fc.missing, truncated
                )
            n = fc.present
            mean = fc.total / n if n else float("nan")
            std = float(np.sqrt(max(fc.total_sq / n - mean**2, 0.0))) if n else float("nan")
            cdf = np.concatenate([[0.0], np.cumsum(counts)]) / max(n, 1)
            quantiles = {k: float(np.interp(q, cdf, prof.edges)) for k, q in QUANTILES.items()}
            return NumericProfile(
                prof.name, list(prof.edges), counts, n, fc.missing, float(mean), std,
                prof.edges[0], prof.edges[-1], quantiles, prof.kind,
            )  # fmt: skip

        return ReferenceProfile(
            {n: like(p, window.features[n]) for n, p in self.features.items()},  # type: ignore[misc]
            window.rows,
            like(self.predictions, window.predictions),
            like(self.probabilities, window.probabilities),  # type: ignore[arg-type]
        )

    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """Profiles built on the same bins (e.g. by `profile_like`) add their counts."""
        if set(self.features) != set(other.features):
            raise ValidationError("cannot merge profiles with different features")

        def both(a, b):
            return None if a is None or b is None else a.merge(b)

        return ReferenceProfile(
            {name: prof.merge(other.features[name]) for name, prof in self.features.items()},  # type: ignore[arg-type]
            self.rows + other.rows,
            both(self.predictions, other.predictions),
            both(self.probabilities, other.probabilities),
        )

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        def one(prof: FeatureProfile | None) -> dict[str, Any] | None:
            return None if prof is None else {**prof.__dict__}

        return {
            "schema_version": self.schema_version,
            "rows": self.rows,
            "features": {name: one(p) for name, p in self.features.items()},
            "predictions": one(self.predictions),
            "probabilities": one(self.probabilities),
        }

    def to_json(self) -> str:
        return json.dumps(_finite(self.to_dict()), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValidationError(f"unsupported reference profile schema_version {version!r}")

        def one(item: Mapping[str, Any] | None) -> FeatureProfile | None:
            if item is None:
                return None
            item = {k: (float("nan") if v is None and k in _FLOATS else v) for k, v in item.items()}
            return (CategoricalProfile if item.get("kind") == CATEGORICAL else NumericProfile)(
                **item
            )

        try:
            return cls(
                features={name: one(p) for name, p in data["features"].items()},  # type: ignore[misc]
                rows=int(data["rows"]),
                predictions=one(data.get("predictions")),
                probabilities=one(data.get("probabilities")),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"malformed reference profile: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"reference profile is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValidationError("reference profile must be a JSON object")
        return cls.from_dict(data)


_FLOATS = {"mean", "std", "min", "max"}
# features.yaml types -> profile kinds
_CONTRACT_KINDS = {
    "number": NUMERIC,
    "integer": NUMERIC,
    "date": DATE,
    "category": CATEGORICAL,
    "string": CATEGORICAL,
    "boolean": CATEGORICAL,
}


def _declared(prof: FeatureProfile, rule: Any, series: pd.Series) -> FeatureProfile:
    """The profile on the contract's bins: declared min/max as the outer edges (when they
    hold the data), declared allowed values as the categories."""
    if rule is None:
        return prof
    if isinstance(prof, CategoricalProfile) and rule.allowed is not None:
        values = categorical_values(series)
        declared = CategoricalProfile(prof.name, [str(a) for a in rule.allowed], [], 0, 0)
        found = declared.count_values(values)
        declared.counts = [int(c) for c in found.counts]
        declared.missing = found.missing
        declared.count = int(len(values) - found.missing)
        return declared
    if isinstance(prof, NumericProfile) and prof.kind == NUMERIC and len(prof.edges) >= 2:
        if rule.min is not None and rule.min <= prof.edges[0]:
            prof.edges[0] = float(rule.min)
        if rule.max is not None and rule.max >= prof.edges[-1]:
            prof.edges[-1] = float(rule.max)
    return prof


def _finite(value: Any) -> Any:
    """NaN and infinity become null so the JSON is strict."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def training_profile(
    model: Any, X_train: pd.DataFrame, X_test: pd.DataFrame, spec: Any, contract: Any = None
) -> ReferenceProfile:
    """The profile logged at training time: features of the training split, outputs on the
    held-out split (what the model says on unseen rows, which is what serving will see).

    `spec` is the run's FeatureSpec: its numeric, categorical and date columns set the kinds;
    `contract` (the run's FeatureContract, when it has one) its types, ranges and categories.
    """
    kinds = {c: NUMERIC for c in spec.numeric}
    kinds.update({c: CATEGORICAL for c in spec.categorical})
    kinds.update({c: DATE for c in spec.date})
    probabilities = model.predict_proba(X_test) if hasattr(model, "predict_proba") else None
    return ReferenceProfile.from_frame(
        X_train, predictions=model.predict(X_test), probabilities=probabilities, kinds=kinds,
        contract=contract,
    )  # fmt: skip
