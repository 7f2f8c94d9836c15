"""Windowed model quality from ground truth, and its degradation against training.

The window is the last `window` labels of one model version (by arrival). Classifiers get
accuracy, precision, recall, F1 and ROC AUC; regressors MAE and RMSE. The prediction log keeps
the probability of the *predicted* class, so for a binary model the positive-class probability
is `p` when the prediction is the positive class (the larger of the two sorted classes) and
`1 - p` otherwise; ROC AUC uses that, never hard labels. Degradation is training metric minus
live metric (live minus training for errors), so a positive value always means "worse".
Everything is computed from the database, so the gauges come back after a restart.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score
from sqlalchemy import func, select

from mloop.registry.runs import training_run
from mloop.settings import Settings
from mloop.store import Database
from mloop.store.monitoring import FeedbackRecord

log = logging.getLogger("mloop.monitoring")

CLASSIFICATION = "classification"
REGRESSION = "regression"
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


@dataclass
class QualityReport:
    """Live metrics of one version over its latest labels, and how far they fell from training."""

    model_name: str
    model_version: str
    task: str | None
    labels: int
    metrics: dict[str, float] = field(default_factory=dict)
    training: dict[str, float] = field(default_factory=dict)
    degradation: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "task": self.task,
            "labels": self.labels,
            "metrics": self.metrics,
            "training_metrics": self.training,
            "degradation": self.degradation,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def infer_task(predictions: list[Any], classes: list[Any] | None = None) -> str:
    """Classification when the model has classes or predicts labels; regression for floats."""
    if classes is not None:
        return CLASSIFICATION
    if predictions and all(isinstance(p, float) for p in predictions):
        return REGRESSION
    return CLASSIFICATION


def classification_quality(
    actual: list[Any], predicted: list[Any], probability: list[float | None]
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (binary on the positive class, else weighted) and ROC AUC."""
    y_true = np.asarray([str(a) for a in actual], dtype=object)
    y_pred = np.asarray([str(p) for p in predicted], dtype=object)
    # Classes as the metrics see them (text): True and 1, or 1.0 and 1, are equal as values but
    # two classes as text, and counting them as one made sklearn refuse a "binary" average.
    by_text = {str(v): v for v in [*actual, *predicted]}
    classes = sorted(by_text.values(), key=_class_order)
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    if len(classes) == 2:
        positive = str(classes[1])
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average="binary", pos_label=positive, zero_division=0
        )
        scores = [
            (pr if str(pred) == positive else 1.0 - pr)
            for pred, pr in zip(predicted, probability, strict=True)
            if pr is not None
        ]
        if len(scores) == len(actual) and len(set(y_true)) == 2:
            out["roc_auc"] = float(roc_auc_score(y_true == positive, scores))
    else:
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average="weighted", zero_division=0
        )
    out.update(precision=float(p), recall=float(r), f1=float(f))
    return out


def _class_order(value: Any) -> tuple[int, Any]:
    """Sort numbers numerically and strings alphabetically (sklearn's class order)."""
    return (0, value) if _is_number(value) else (1, str(value))


def regression_quality(actual: list[Any], predicted: list[Any]) -> dict[str, float]:
    """MAE and RMSE; labels that are not numbers are left out."""
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if _is_number(a)]
    if not pairs:
        return {}
    y_true, y_pred = (np.asarray(v, dtype=np.float64) for v in zip(*pairs, strict=True))
    errors = y_pred - y_true
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}


def degradation(live: dict[str, float], training: dict[str, float]) -> dict[str, float]:
    """Training minus live (live minus training for errors): > 0 means the model got worse."""
    out = {}
    for metric, value in live.items():
        reference = training.get(metric)
        if reference is None or not math.isfinite(reference):
            continue
        out[metric] = value - reference if metric in LOWER_IS_BETTER else reference - value
    return out


class QualityMonitor:
    """Computes quality reports from the feedback table and exports them as gauges."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        settings: Settings,
        database: Database | None = None,
        window: int = 1000,
        training_metrics: Callable[[str, str], tuple[dict[str, float], str | None]] | None = None,
    ) -> None:
        self.database = database  # bound at server startup, when the database is opened
        self.window = window
        self._training_metrics = training_metrics or partial(mlflow_training_metrics, settings)
        self._training: dict[tuple[str, str], tuple[dict[str, float], str | None]] = {}
        self._lock = threading.Lock()
        self.quality = Gauge(
            "model_quality",
            "Live quality over the latest labelled predictions, by metric and model version.",
            ["metric", "model_version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.degradation = Gauge(
            "model_quality_degradation",
            "Training metric minus live metric (errors: live minus training); > 0 is worse.",
            ["metric", "model_version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.labels = Gauge(
            "model_feedback_labels",
            "Labels in the current quality window, by model version.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def report(
        self, model_name: str, model_version: str, classes: list[Any] | None = None
    ) -> QualityReport:
        """Quality of one version over its latest `window` labels."""
        with self.database.session() as session:
            rows = session.execute(
                select(FeedbackRecord.actual, FeedbackRecord.prediction, FeedbackRecord.probability)
                .where(
                    FeedbackRecord.model_name == model_name,
                    FeedbackRecord.model_version == model_version,
                )
                .order_by(FeedbackRecord.received_at.desc())
                .limit(self.window)
            ).all()
        training, task = self._training_for(model_name, model_version)
        report = QualityReport(model_name, model_version, task, len(rows), training=training)
        if not rows:
            return report
        actual, predicted, probability = (list(col) for col in zip(*rows, strict=True))
        report.task = task or infer_task(predicted, classes)
        if report.task == REGRESSION:
            report.metrics = regression_quality(actual, predicted)
        else:
            report.metrics = classification_quality(actual, predicted, probability)
        report.degradation = degradation(report.metrics, training)
        return report

    def refresh(
        self, model_name: str, model_version: str, classes: list[Any] | None = None
    ) -> QualityReport:
        """Recompute one version's report and set its gauges."""
        with self._lock:
            report = self.report(model_name, model_version, classes)
            self.labels.labels(model_version=model_version).set(report.labels)
            for metric, value in report.metrics.items():
                self.quality.labels(metric=metric, model_version=model_version).set(value)
            for metric, value in report.degradation.items():
                self.degradation.labels(metric=metric, model_version=model_version).set(value)
        return report

    def refresh_all(self, limit: int = 20) -> list[QualityReport]:
        """Gauges for the versions labelled most recently (at startup: survive a restart)."""
        with self.database.session() as session:
            pairs = session.execute(
                select(FeedbackRecord.model_name, FeedbackRecord.model_version)
                .group_by(FeedbackRecord.model_name, FeedbackRecord.model_version)
                .order_by(func.max(FeedbackRecord.received_at).desc())
                .limit(limit)
            ).all()
        reports = []
        for name, version in pairs:
            try:
                reports.append(self.refresh(name, version))
            except Exception as exc:  # one version's labels must not keep the others' gauges
                log.warning("cannot restore the quality of %s/%s: %s", name, version, exc)
        return reports

    def _training_for(self, name: str, version: str) -> tuple[dict[str, float], str | None]:
        key = (name, version)
        if key not in self._training:
            try:
                self._training[key] = self._training_metrics(name, version)
            except Exception as exc:  # an unregistered model or a registry hiccup: no baseline
                log.warning("no training metrics for %s/%s: %s", name, version, exc)
                return {}, None
        return self._training[key]


def mlflow_training_metrics(
    settings: Settings, name: str, version: str
) -> tuple[dict[str, float], str | None]:
    """The evaluation metrics and task (`mloop.task` tag) of the run behind a registered version."""
    if version == "unregistered":
        return {}, None
    run = training_run(settings, name, version)
    if run is None:
        return {}, None
    task = run.tags.get("mloop.task")
    task = REGRESSION if task == REGRESSION else (CLASSIFICATION if task else None)
    return dict(run.metrics), task
