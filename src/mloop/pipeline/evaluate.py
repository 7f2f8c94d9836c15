"""Held-out metrics, cross-validation and the registration gate.

ROC AUC is computed from predicted probabilities, never from hard labels (the seed's bug).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

from mloop.errors import ConfigError, ValidationError

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
CV_METRICS = ("cv_mean", "cv_std")
KNOWN_METRICS = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, *CV_METRICS)
# Criteria on these pass when the metric is at most the threshold.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "cv_std"})


@dataclass(frozen=True)
class CriterionResult:
    """One registration criterion: `margin` > 0 means room to spare, < 0 means short by that."""

    metric: str
    threshold: float
    actual: float
    passed: bool
    margin: float

    @property
    def comparison(self) -> str:
        if self.metric in LOWER_IS_BETTER:
            return "<=" if self.passed else ">"
        return ">=" if self.passed else "<"

    def describe(self) -> str:
        """`roc_auc 0.71 < 0.75 (short by 0.04)` or `accuracy 0.82 >= 0.70`."""
        text = f"{self.metric} {self.actual:.4g} {self.comparison} {self.threshold:.4g}"
        if not self.passed:
            text += f" (short by {abs(self.margin):.4g})"
        return text

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def positive_proba(proba: np.ndarray) -> np.ndarray:
    """Probability of the positive class (the second of the sorted classes)."""
    return proba[:, 1]


def classification_metrics(
    y_true: pd.Series | np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC from class probabilities.

    Binary: labels come from `threshold` on the positive-class probability and ROC AUC uses
    that probability. Multiclass: argmax labels, weighted averages, one-vs-rest ROC AUC.
    """
    y_true = np.asarray(y_true)
    if len(classes) == 2:
        pos = positive_proba(proba)
        y_pred = np.where(pos >= threshold, classes[1], classes[0])
        avg = {"average": "binary", "pos_label": classes[1]}
        auc = roc_auc_score(y_true == classes[1], pos) if len(np.unique(y_true)) == 2 else np.nan
    else:
        y_pred = classes[np.argmax(proba, axis=1)]
        avg = {"average": "weighted"}
        present = np.isin(classes, np.unique(y_true))
        auc = (
            roc_auc_score(y_true, proba, multi_class="ovr", average="weighted", labels=classes)
            if present.all()
            else np.nan
        )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0, **avg)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0, **avg)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0, **avg)),
        "roc_auc": float(auc),
    }


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """RMSE, MAE and R² of numeric predictions."""
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def cross_validate(
    pipeline, X: pd.DataFrame, y: pd.Series, *, folds: int, task: str, random_state: int
) -> dict[str, float]:
    """Mean and std of the k-fold score on the training split (ROC AUC or R²)."""
    if task == "regression":
        splitter = KFold(n_splits=folds, shuffle=True, random_state=random_state)
        scoring = "r2"
    else:
        smallest = int(y.value_counts().min())
        if smallest < folds:
            raise ValidationError(
                f"too few rows for {folds}-fold cross-validation: the rarest class has "
                f"{smallest} training rows",
                hint="lower evaluate.cv_folds (0 disables it) or add data",
            )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
        scoring = "roc_auc" if task == "binary" else "roc_auc_ovr_weighted"
    scores = cross_val_score(clone(pipeline), X, y, cv=splitter, scoring=scoring, n_jobs=1)
    return {"cv_mean": float(np.mean(scores)), "cv_std": float(np.std(scores))}


def metrics_for_task(task: str) -> tuple[str, ...]:
    """Metric names a task produces (criteria must come from these)."""
    base = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return (*base, *CV_METRICS)


def check_criteria(metrics: dict[str, float], criteria: dict[str, float]) -> list[CriterionResult]:
    """Compare each criterion with its metric; a metric the run did not produce is a ConfigError."""
    results = []
    for metric, threshold in criteria.items():
        if metric not in metrics:
            raise ConfigError(
                f"register.criteria.{metric}: this run has no {metric!r} metric",
                hint=f"metrics of this run: {', '.join(sorted(metrics))}",
            )
        actual = float(metrics[metric])
        margin = threshold - actual if metric in LOWER_IS_BETTER else actual - threshold
        passed = bool(np.isfinite(actual) and margin >= 0)
        results.append(CriterionResult(metric, float(threshold), actual, passed, float(margin)))
    return results


def describe_failures(results: list[CriterionResult]) -> str:
    """`not registered: roc_auc 0.71 < 0.75 (short by 0.04); ...`"""
    failed = [r.describe() for r in results if not r.passed]
    return "not registered: " + "; ".join(failed)
