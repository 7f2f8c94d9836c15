"""Metrics from probabilities, cross-validation guard, and the registration gate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mloop.errors import ConfigError
from mloop.pipeline.evaluate import (
    check_criteria,
    classification_metrics,
    describe_failures,
    regression_metrics,
)


def test_binary_metrics_use_probabilities_and_threshold():
    y = np.array([0, 0, 1, 1, 1])
    proba1 = np.array([0.1, 0.6, 0.55, 0.8, 0.3])
    proba = np.column_stack([1 - proba1, proba1])
    m = classification_metrics(y, proba, np.array([0, 1]), threshold=0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba1))
    assert m["accuracy"] == pytest.approx(3 / 5)
    strict = classification_metrics(y, proba, np.array([0, 1]), threshold=0.7)
    assert strict["recall"] == pytest.approx(1 / 3)
    assert strict["roc_auc"] == m["roc_auc"]


def test_string_labels_and_multiclass():
    y = np.array(["no", "yes", "yes", "no"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = classification_metrics(y, proba, np.array(["no", "yes"]))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y == "yes", proba[:, 1]))
    y3 = np.array([0, 1, 2, 2, 1, 0])
    p3 = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.1, 0.7, 0.2],
            [0.1, 0.2, 0.7],
            [0.3, 0.3, 0.4],
            [0.2, 0.5, 0.3],
            [0.5, 0.4, 0.1],
        ]
    )
    m3 = classification_metrics(y3, p3, np.array([0, 1, 2]))
    assert m3["accuracy"] == 1.0 and m3["roc_auc"] == pytest.approx(1.0)


def test_regression_metrics():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_gate_directions_margins_and_message():
    metrics = {"roc_auc": 0.71, "accuracy": 0.8, "rmse": 2.0}
    results = check_criteria(metrics, {"roc_auc": 0.75, "accuracy": 0.7, "rmse": 1.5})
    by = {r.metric: r for r in results}
    assert not by["roc_auc"].passed and by["roc_auc"].margin == pytest.approx(-0.04)
    assert by["accuracy"].passed and by["accuracy"].margin == pytest.approx(0.1)
    assert not by["rmse"].passed and by["rmse"].margin == pytest.approx(-0.5)
    assert check_criteria({"rmse": 1.0}, {"rmse": 1.5})[0].passed
    text = describe_failures(results)
    assert text.startswith("not registered: roc_auc 0.71 < 0.75 (short by 0.04)")
    assert "rmse 2 > 1.5 (short by 0.5)" in text
    assert check_criteria({"roc_auc": float("nan")}, {"roc_auc": 0.5})[0].passed is False


def test_criterion_without_metric_is_config_error():
    with pytest.raises(ConfigError, match="register.criteria.r2"):
        check_criteria({"accuracy": 1.0}, {"r2": 0.5})
