"""Evaluation plots of a training run: PNG figures and the numbers behind them as JSON.

Classification: ROC and precision-recall curves, confusion matrix, calibration curve, feature
importance. Regression: residuals, predicted-vs-actual, feature importance. Importance is the
estimator's own (`feature_importances_`) when it has one, else permutation importance on at
most `PERMUTATION_ROWS` held-out rows. Every plot is computed on the test split; `write_plots`
renders `<name>.png` and `<name>.json` into a folder (logged as the run's `plots/`).
matplotlib is imported lazily with the Agg backend (no display needed, never at CLI start-up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

ARTIFACT_DIR = "plots"
CLASSIFICATION_PLOTS = ("roc", "precision_recall", "confusion_matrix", "calibration")
REGRESSION_PLOTS = ("residuals", "predicted_vs_actual")
MAX_POINTS = 500  # curve and scatter points kept per series (JSON size, drawing time)
PERMUTATION_ROWS = 1000
PERMUTATION_REPEATS = 3
TOP_FEATURES = 20


@dataclass(frozen=True)
class Plot:
    """One plot's name, title and the JSON-ready numbers it is drawn from."""

    name: str
    title: str
    data: dict[str, Any]


def classification_plots(
    pipeline: Pipeline,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    threshold: float = 0.5,
    random_state: int = 0,
) -> list[Plot]:
    """ROC, precision-recall, confusion matrix, calibration and importance on the test split.

    Binary: curves of the positive (second) class. Multiclass: one-vs-rest, one per class.
    """
    classes = pipeline.classes_
    proba = pipeline.predict_proba(X_test)
    y = np.asarray(y_test)
    if len(classes) == 2:
        predicted = np.where(proba[:, 1] >= threshold, classes[1], classes[0])
        positives = [(1, classes[1])]
    else:
        predicted = classes[np.argmax(proba, axis=1)]
        positives = list(enumerate(classes))
    roc, pr, calibration = [], [], []
    for column, label in positives:
        truth, score = y == label, proba[:, column]
        if truth.all() or not truth.any():
            continue  # a class absent from the test split has no curve
        fpr, tpr, _ = roc_curve(truth, score)
        precision, recall, _ = precision_recall_curve(truth, score)
        prob_true, prob_pred = calibration_curve(truth, score, n_bins=10, strategy="quantile")
        name = _plain(label)
        roc.append(
            {
                "label": name,
                "auc": float(roc_auc_score(truth, score)),
                **_xy(fpr, tpr, "fpr", "tpr"),
            }
        )
        pr.append(
            {
                "label": name,
                "average_precision": float(average_precision_score(truth, score)),
                **_xy(recall, precision, "recall", "precision"),
            }
        )
        calibration.append({"label": name, **_xy(prob_pred, prob_true, "predicted", "observed")})
    matrix = confusion_matrix(y, predicted, labels=classes)
    plots = [
        Plot("roc", "ROC curve", {"curves": roc}),
        Plot("precision_recall", "Precision-recall curve", {"curves": pr}),
        Plot(
            "confusion_matrix",
            "Confusion matrix (rows: actual, columns: predicted)",
            {"labels": [_plain(c) for c in classes], "matrix": matrix.tolist()},
        ),
        Plot("calibration", "Calibration curve", {"curves": calibration}),
    ]
    return [*plots, _importance(pipeline, X_test, y_test, random_state)]


def regression_plots(
    pipeline: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, *, random_state: int = 0
) -> list[Plot]:
    """Residuals against predictions, predicted against actual, and importance."""
    actual = np.asarray(y_test, dtype=float)
    predicted = np.asarray(pipeline.predict(X_test), dtype=float)
    keep = _sample(len(actual), random_state)
    residual = actual - predicted
    return [
        Plot(
            "residuals",
            "Residuals (actual - predicted)",
            {
                "predicted": predicted[keep].tolist(),
                "residual": residual[keep].tolist(),
                "mean": float(residual.mean()),
                "std": float(residual.std()),
            },
        ),
        Plot(
            "predicted_vs_actual",
            "Predicted vs actual",
            {"actual": actual[keep].tolist(), "predicted": predicted[keep].tolist()},
        ),
        _importance(pipeline, X_test, y_test, random_state),
    ]


def write_plots(plots: list[Plot], folder: Path) -> list[Path]:
    """Render each plot as `<name>.png` with its numbers as `<name>.json`; the PNG paths."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots:
        (folder / f"{plot.name}.json").write_text(json.dumps(plot.data), encoding="utf-8")
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=80)
        try:
            _DRAW[plot.name](ax, plot.data)
            ax.set_title(plot.title)
            fig.tight_layout()
            png = folder / f"{plot.name}.png"
            fig.savefig(png)
            written.append(png)
        finally:
            plt.close(fig)
    return written


def _importance(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, random_state: int) -> Plot:
    """The estimator's own importances per transformed feature, else permutation importance
    per raw input column on a bounded sample of the test split."""
    own = getattr(pipeline.named_steps["model"], "feature_importances_", None)
    if own is not None:
        names = pipeline.named_steps["features"].get_feature_names_out()
        values, method, spread = np.asarray(own, dtype=float), "model", None
    else:
        rows = _sample(len(X), random_state, PERMUTATION_ROWS)
        result = permutation_importance(
            pipeline,
            X.iloc[rows],
            y.iloc[rows],
            n_repeats=PERMUTATION_REPEATS,
            random_state=random_state,
            n_jobs=1,
        )
        names, values = np.asarray(X.columns), result.importances_mean
        method, spread = "permutation", result.importances_std
    order = np.argsort(-values)[:TOP_FEATURES]
    data: dict[str, Any] = {
        "method": method,
        "features": [str(names[i]) for i in order],
        "importance": [float(values[i]) for i in order],
    }
    if spread is not None:
        data["std"] = [float(spread[i]) for i in order]
    return Plot("feature_importance", f"Feature importance ({method})", data)


def _sample(n: int, random_state: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices of at most `limit` of `n` rows, reproducibly."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, limit, replace=False))


def _xy(x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> dict[str, list[float]]:
    """A curve's points, thinned evenly to at most MAX_POINTS (first and last kept)."""
    if len(x) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return {xname: [float(v) for v in x], yname: [float(v) for v in y]}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _pyplot():
    # lazy: matplotlib costs ~0.5 s to import; only training runs draw
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _curves(xname: str, yname: str, score: str | None, diagonal: bool):
    def draw(ax, data: dict[str, Any]) -> None:
        for curve in data["curves"]:
            label = str(curve["label"])
            if score:
                label += f" ({score} {curve[score]:.3f})"
            ax.plot(curve[xname], curve[yname], label=label)
        if diagonal:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.set_xlabel(xname)
        ax.set_ylabel(yname)
        if data["curves"]:
            ax.legend(loc="best", fontsize=8)

    return draw


def _draw_confusion(ax, data: dict[str, Any]) -> None:
    matrix = np.asarray(data["matrix"])
    labels = [str(v) for v in data["labels"]]
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    limit = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > limit else "k")


def _draw_importance(ax, data: dict[str, Any]) -> None:
    names, values = data["features"][::-1], data["importance"][::-1]
    std = data.get("std")
    ax.barh(names, values, xerr=std[::-1] if std else None, color="#3b82f6")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("importance")


def _draw_residuals(ax, data: dict[str, Any]) -> None:
    ax.scatter(data["predicted"], data["residual"], s=8, alpha=0.5)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual")


def _draw_predicted_vs_actual(ax, data: dict[str, Any]) -> None:
    ax.scatter(data["actual"], data["predicted"], s=8, alpha=0.5)
    both = data["actual"] + data["predicted"]
    if both:
        low, high = min(both), max(both)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")


_DRAW = {
    "roc": _curves("fpr", "tpr", "auc", diagonal=True),
    "precision_recall": _curves("recall", "precision", "average_precision", diagonal=False),
    "calibration": _curves("predicted", "observed", None, diagonal=True),
    "confusion_matrix": _draw_confusion,
    "feature_importance": _draw_importance,
    "residuals": _draw_residuals,
    "predicted_vs_actual": _draw_predicted_vs_actual,
}
