"""The estimators `train.model` may name, per task, with their default parameters."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from mloop.errors import ConfigError

CLASSIFICATION = "classification"
REGRESSION = "regression"

# model name -> task family -> (estimator class, default params)
MODELS: dict[str, dict[str, tuple[type[BaseEstimator], dict[str, Any]]]] = {
    "random_forest": {
        CLASSIFICATION: (
            RandomForestClassifier,
            {"n_estimators": 100, "max_depth": 10, "min_samples_split": 5, "random_state": 42},
        ),
        REGRESSION: (
            RandomForestRegressor,
            {"n_estimators": 100, "max_depth": 10, "min_samples_split": 5, "random_state": 42},
        ),
    },
    "gradient_boosting": {
        CLASSIFICATION: (
            GradientBoostingClassifier,
            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "random_state": 42},
        ),
        REGRESSION: (
            GradientBoostingRegressor,
            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "random_state": 42},
        ),
    },
    "logistic_regression": {
        CLASSIFICATION: (LogisticRegression, {"C": 1.0, "max_iter": 1000}),
    },
    "ridge": {
        REGRESSION: (Ridge, {"alpha": 1.0}),
    },
}


def default_params(model: str) -> dict[str, Any]:
    """Default parameters of `model` (the first task family it supports)."""
    return dict(next(iter(MODELS[model].values()))[1])


def allowed_params(model: str) -> set[str]:
    """Every constructor parameter any task variant of `model` accepts."""
    names: set[str] = set()
    for cls, _ in MODELS[model].values():
        names |= set(cls().get_params())
    return names


def make_estimator(model: str, family: str, params: dict[str, Any]) -> BaseEstimator:
    """Instantiate `model` for a task family with `params`; a bad value is a ConfigError."""
    variants = MODELS.get(model)
    if variants is None:
        raise ConfigError(f"train.model: unknown model {model!r}", hint=_models_hint())
    if family not in variants:
        supported = [m for m, v in MODELS.items() if family in v]
        raise ConfigError(
            f"train.model: {model!r} does not support {family} targets",
            hint=f"for {family} use one of: {', '.join(supported)}",
        )
    cls, _ = variants[family]
    accepted = set(cls().get_params())
    usable = {k: v for k, v in params.items() if k in accepted}
    estimator = cls(**usable)
    check_params(estimator, f"train.params for {model}")
    return estimator


def check_params(estimator: BaseEstimator, where: str) -> None:
    """Run scikit-learn's own parameter validation now, not halfway through training."""
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:  # pragma: no cover - older scikit-learn
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _models_hint() -> str:
    return f"supported models: {', '.join(MODELS)}"
