"""The DVC stages around training: `prepare` (a held-out split to files) and `evaluate`
(a registered model scored on that file: metrics.json and the CSV plots `dvc plots` reads).

    prepare:  data.csv -> prepared/train.csv, prepared/test.csv   (params: preprocess)
    train:    mloop train on prepared/train.csv -> train.json      (the registered version)
    evaluate: the version of train.json on prepared/test.csv -> metrics.json, plots/*.csv
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.model_selection import train_test_split

from mloop.data.io import read_table, write_table
from mloop.errors import ConfigError, ValidationError
from mloop.pipeline.config import TrainConfig
from mloop.pipeline.dataset import REGRESSION, detect_task
from mloop.pipeline.evaluate import classification_metrics, regression_metrics
from mloop.registry.resolve import load_model
from mloop.settings import Settings

TRAIN_FILE, TEST_FILE = "train.csv", "test.csv"
PLOT_FILES = {
    "roc": "roc.csv",  # fpr,tpr
    "precision_recall": "precision_recall.csv",  # recall,precision
    "confusion": "confusion.csv",  # actual,predicted (one row per test row)
    "predictions": "predictions.csv",  # actual,predicted (regression)
}


def prepare(data: Path, config: TrainConfig, out_dir: Path) -> dict[str, Path]:
    """Split `data` into train and held-out test files (stratified for labels), as the
    config's `preprocess` section says; returns the two paths."""
    df = read_table(data)
    target = config.data.target
    if target not in df.columns:
        raise ValidationError(
            f"target column {target!r} (data.target) is not in {str(data)!r}",
            hint=f"columns: {', '.join(map(str, df.columns))}",
        )
    labels = detect_task(df[target].dropna()) != REGRESSION
    try:
        train, test = train_test_split(
            df,
            test_size=config.preprocess.test_split,
            random_state=config.preprocess.random_state,
            stratify=df[target] if labels else None,
        )
    except ValueError as exc:
        raise ValidationError(f"cannot split {str(data)!r}: {exc}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": out_dir / TRAIN_FILE, "test": out_dir / TEST_FILE}
    write_table(train, paths["train"])
    write_table(test, paths["test"])
    return paths


def evaluate(
    report: Path, data: Path, config: TrainConfig, settings: Settings, metrics_out: Path,
    plots_dir: Path,
) -> dict[str, float]:  # fmt: skip
    """Score the version `report` (mloop train's --metrics-file) names on `data`; write the
    metrics as JSON and the plots as CSV files; returns the metrics."""
    ref = _registered_ref(report)
    df = read_table(data)
    target = config.data.target
    if target not in df.columns:
        raise ValidationError(f"target column {target!r} (data.target) is not in {str(data)!r}")
    model = load_model(ref, settings)
    y = df[target].to_numpy()
    ignore = [target, *config.data.id_columns, *config.data.drop]
    values, proba = model.predict(df.drop(columns=[c for c in ignore if c in df.columns]))
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name in PLOT_FILES.values():  # a stale plot of the other task must not linger
        (plots_dir / name).unlink(missing_ok=True)
    if proba is None:
        predicted = np.asarray(values, dtype=float)
        metrics = regression_metrics(y, predicted)
        _csv(plots_dir / PLOT_FILES["predictions"], actual=y, predicted=predicted)
    else:
        classes = np.asarray(model.classes)
        metrics = classification_metrics(y, proba, classes, config.evaluate.threshold)
        _classification_plots(y, proba, classes, config.evaluate.threshold, plots_dir)
    metrics = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
    metrics_out.parent.mkdir(parents=True, exist_ok=True)
    metrics_out.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metrics


def _registered_ref(report: Path) -> str:
    """`name/version` from a train report; ConfigError when it is unreadable or unregistered."""
    try:
        body = json.loads(report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"train report {str(report)!r} does not exist",
            hint="write it with: mloop train --metrics-file train.json",
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{report}: not a train report: {exc}") from None
    if not isinstance(body, dict) or not body.get("registered") or not body.get("version"):
        raise ConfigError(f"{report}: the run it reports registered no version")
    return f"{body['model_name']}/{body['version']}"


def _classification_plots(
    y: np.ndarray, proba: np.ndarray, classes: np.ndarray, threshold: float, plots_dir: Path
) -> None:
    """ROC and precision-recall (binary), and the confusion rows `template: confusion` reads."""
    if len(classes) == 2:
        positive = y == classes[1]
        fpr, tpr, _ = roc_curve(positive, proba[:, 1])
        _csv(plots_dir / PLOT_FILES["roc"], fpr=fpr, tpr=tpr)
        precision, recall, _ = precision_recall_curve(positive, proba[:, 1])
        _csv(plots_dir / PLOT_FILES["precision_recall"], recall=recall, precision=precision)
        predicted = np.where(proba[:, 1] >= threshold, classes[1], classes[0])
    else:
        predicted = classes[np.argmax(proba, axis=1)]
    _csv(plots_dir / PLOT_FILES["confusion"], actual=y, predicted=predicted)


def _csv(path: Path, **columns: np.ndarray) -> None:
    pd.DataFrame({k: np.asarray(v) for k, v in columns.items()}).to_csv(path, index=False)
