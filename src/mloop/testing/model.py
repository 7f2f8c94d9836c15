"""A project's registered model as the checks see it: rows in, answers out.

Wraps mloop's own loader (`mloop.registry.resolve.load_model`, the one serving uses), so the
rows a check sends are validated and typed exactly as a request's would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mloop.model.loader import LoadedModel
from mloop.model.output import plain
from mloop.settings import Settings


@dataclass
class ProjectModel:
    """The loaded model, its reference, and what it predicts (`classes`, or None: numbers)."""

    ref: str
    loaded: LoadedModel
    target: str | None = None

    @property
    def classes(self) -> list[Any] | None:
        classes = self.loaded.classes
        return [plain(c) for c in classes] if classes is not None else None

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One answer per row: a class label or a number."""
        values, _ = self.loaded.predict(self.loaded.schema.to_frame(rows))
        return [plain(v) for v in values]

    def scores(self, rows: list[dict[str, Any]]) -> list[float]:
        """Positive-class probability (binary), else the numeric prediction."""
        values, proba = self.loaded.predict(self.loaded.schema.to_frame(rows))
        if proba is not None:
            return [float(p) for p in proba[:, -1]]
        return [float(v) for v in values]

    def metrics(self, rows: list[dict[str, Any]], actual: list[Any]) -> dict[str, float]:
        """Training's metrics on these rows (classification from the probabilities); columns
        the model does not take (ids) are left out."""
        # lazy: sklearn and pandas through the pipeline's metrics
        import numpy as np

        from mloop.pipeline.evaluate import classification_metrics, regression_metrics

        inputs = {f.name for f in self.loaded.schema.features}  # a file's ids are not inputs
        rows = [{k: v for k, v in row.items() if k in inputs} for row in rows]
        values, proba = self.loaded.predict(self.loaded.schema.to_frame(rows))
        if proba is None:
            return regression_metrics(np.asarray(actual, dtype=float), values.astype(float))
        return classification_metrics(np.asarray(actual), proba, np.asarray(self.loaded.classes))


def load_project_model(settings: Settings, ref: str, target: str | None = None) -> ProjectModel:
    """Load `ref` (`NAME`, `NAME/VERSION`, `NAME@ALIAS` or a model URI) from the registry."""
    from mloop.registry.resolve import load_model  # lazy: mlflow

    if "/" not in ref and "@" not in ref and ":" not in ref:
        ref = f"{ref}/{_latest(settings, ref)}"
    return ProjectModel(ref, load_model(ref, settings), target)


def _latest(settings: Settings, name: str) -> str:
    from mloop.registry.service import Registry  # lazy: mlflow

    found = {m.name: m.latest_version for m in Registry(settings).list_models()}
    if not found.get(name):
        raise AssertionError(f"no registered version of model {name!r}: run `mloop train` first")
    return str(found[name])
