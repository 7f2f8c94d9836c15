"""Load one model from a reference or URI into something the server can call.

The URI is already pinned (registered references are resolved by `mloop.registry.resolve`),
so an alias moving later does not change what this process serves. Models with
the sklearn flavor are loaded natively (one `predict_proba` call gives labels and
probabilities); anything else goes through `mlflow.pyfunc`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import MloopError, NotFoundError, ValidationError
from mloop.features.contract import CONTRACT_ARTIFACT, FeatureContract
from mloop.model.contract_check import contract_check
from mloop.model.native import proba_function
from mloop.model.onnx import load_onnx
from mloop.model.output import OutputShape, output_rows
from mloop.model.schema import Feature, InputSchema


@dataclass
class LoadedModel:
    """A model ready to predict, with what the server reports about it."""

    name: str
    version: str
    uri: str
    flavor: str
    run_id: str | None
    schema: InputSchema
    classes: list[Any] | None
    alias: str | None = None
    source: str = ""  # the reference or URI it was loaded from, as configured
    # The features.yaml logged with it (its rules are enforced by `schema.validate`), or None.
    contract: FeatureContract | None = None
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    _native: Any = field(default=None, repr=False)
    _pyfunc: Any = field(default=None, repr=False)
    _proba: Any = field(default=None, repr=False)  # native.proba_function(_native)
    _runner: Any = field(default=None, repr=False)  # a custom predict (e.g. onnxruntime)
    # What the last `predict` returned (a DataFrame, a dict...): how /invocations answers.
    output_shape: OutputShape = field(default_factory=OutputShape)

    @cached_property
    def class_names(self) -> list[str]:
        """Class labels as strings (JSON object keys); empty for models without classes.

        Computed once: every answer with probabilities uses them as keys.
        """
        return [str(c) for c in self.classes] if self.classes is not None else []

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The answer for each row, and class probabilities (rows x classes) when the model
        has them.

        Answers are one JSON-ready value per row (`mloop.model.output.output_rows`): a label or
        number, or a list or object for models answering several values per row.
        Blocking: call it from a worker thread, not the event loop.
        """
        if self._runner is not None:
            return self._runner(frame)
        data = self.schema.model_input(frame)
        if self._native is not None:
            if self.classes is not None:
                if self._proba is None:
                    self._proba = proba_function(self._native)
                probabilities = np.asarray(self._proba(data), dtype=np.float64)
                labels = self._native.classes_[probabilities.argmax(axis=1)]
                return labels, probabilities
            output = self._native.predict(data)
        else:
            output = self._pyfunc.predict(data)
        values, self.output_shape = output_rows(output, len(frame))
        return values, None


def load_model(
    uri: str, *, name: str, version: str, alias: str | None = None, source: str = ""
) -> LoadedModel:
    """Load the MLflow model at `uri` (a pinned `models:/NAME/VERSION`, `runs:/...`, a folder).

    Every failure is an MloopError saying what went wrong. Registered references are resolved
    to a pinned URI by `mloop.registry.resolve.load_model`, which calls this.
    Thread-safe: loads run one at a time in a process (`_LOAD_LOCK`), since a flavor's first
    load imports its modules (and unpickling imports the estimator's) and Python's imports of
    one package from several threads at once can fail (`partially initialized module`,
    `_DeadlockError`). A load failing on an import is tried once more under the lock.
    """
    with _LOAD_LOCK:
        try:
            return _load(uri, name=name, version=version, alias=alias, source=source)
        except (MloopError, ImportError) as exc:
            if not _import_failure(exc.__cause__ if isinstance(exc, MloopError) else exc):
                raise
        return _load(uri, name=name, version=version, alias=alias, source=source)


# One load at a time per process: flavor imports are not safe from several threads at once.
_LOAD_LOCK = threading.RLock()


def _import_failure(exc: BaseException | None) -> bool:
    """An import that failed halfway (another thread importing the same package), not a bug."""
    return isinstance(exc, ImportError) or type(exc).__name__ == "_DeadlockError"


def _load(uri: str, *, name: str, version: str, alias: str | None, source: str) -> LoadedModel:
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    try:
        info = mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise NotFoundError(f"cannot find model {uri}: {_first_line(exc)}") from exc
    except OSError as exc:
        raise NotFoundError(f"cannot read model {uri}: {exc}") from exc
    try:
        schema = InputSchema.from_signature(info.signature) if info.signature else None
    except ValidationError as exc:
        raise ValidationError(f"{uri}: {exc.message}", hint=exc.hint) from exc
    try:
        runner = None
        if "sklearn" in info.flavors:
            native = mlflow.sklearn.load_model(uri)
            schema = (schema or _fitted_schema(native, uri)).with_dates(date_columns(native))
            classes = getattr(native, "classes_", None)
            if not hasattr(native, "predict_proba"):
                classes = None
            flavor, pyfunc = "sklearn", None
        elif native_flavor := next((f for f in _SKLEARN_API_FLAVORS if f in info.flavors), None):
            # xgboost / lightgbm: their scikit-learn estimators answer labels and probabilities
            # in one call like the sklearn flavor; a raw Booster goes through pyfunc.
            native = getattr(mlflow, native_flavor).load_model(uri)
            classes = getattr(native, "classes_", None)
            if classes is None or not hasattr(native, "predict_proba"):
                native, classes = None, None
            pyfunc = None if native is not None else mlflow.pyfunc.load_model(uri)
            flavor = native_flavor
        elif "onnx" in info.flavors:
            runner, classes = load_onnx(uri, info.metadata)
            native, pyfunc, flavor = None, None, "onnx"
        else:
            native, classes = None, None
            pyfunc = mlflow.pyfunc.load_model(uri)
            flavor = next((f for f in info.flavors if f != "python_function"), "python_function")
    except MloopError:
        raise
    except Exception as exc:  # any loader failure (missing file, unpickling, version skew)
        raise MloopError(
            f"cannot load model {uri}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if schema is None:
        raise _no_signature(uri)
    contract = load_contract(uri, info.run_id)
    schema = schema.with_contract(contract_check(contract, schema.names))
    return LoadedModel(
        name=name,
        version=version,
        uri=uri,
        flavor=flavor,
        run_id=info.run_id,
        schema=schema,
        classes=[_native_scalar(c) for c in classes] if classes is not None else None,
        alias=alias,
        source=source or uri,
        contract=contract,
        _native=native,
        _pyfunc=pyfunc,
        _runner=runner,
    )


def load_contract(uri: str, run_id: str | None) -> FeatureContract | None:
    """The `features.yaml` in the model's folder, else at the top of its run's artifacts, or
    None when neither has one. A contract that does not parse fails the load (422)."""
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    places = [f"{uri.rstrip('/')}/{CONTRACT_ARTIFACT}"]
    if run_id:
        places.append(f"runs:/{run_id}/{CONTRACT_ARTIFACT}")
    for place in places:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=place)
        except Exception:  # absent (each store says it its own way): try the next place
            continue
        try:
            return FeatureContract.load(path)
        except ValidationError as exc:
            message = f"{uri}: {CONTRACT_ARTIFACT}: {exc.message}"
            raise ValidationError(message, hint=exc.hint) from exc
    return None


def date_columns(model: Any) -> list[str]:
    """Input columns a scikit-learn model reads as dates (`mloop.features.DateParts` inside
    its pipelines and column transformers): the signature only says they are strings."""
    if type(model).__name__ == "DateParts":  # by name: importing it would import sklearn here
        return [str(c) for c in getattr(model, "columns_", None) or []]
    found: list[str] = []
    for _, step, *_ in getattr(model, "steps", None) or []:  # Pipeline
        found += date_columns(step)
    for _, part, columns in getattr(model, "transformers_", None) or []:  # ColumnTransformer
        inner = date_columns(part)
        if inner and isinstance(columns, list | tuple):
            # a transformer fitted on an array names its columns x0, x1...: map them back
            found += [_column_name(c, columns) for c in inner]
    return found


def _column_name(name: str, columns: list | tuple) -> str:
    """`x1` (what a transformer fitted on an array calls its column) -> the input's column."""
    if name.startswith("x") and name[1:].isdigit() and int(name[1:]) < len(columns):
        return str(columns[int(name[1:])])
    return name


def _fitted_schema(model: Any, uri: str) -> InputSchema:
    """A scikit-learn model logged without a signature: the columns it was fitted on.

    `feature_names_in_` (fitted on a DataFrame) gives named float columns; `n_features_in_`
    alone (fitted on an array) a float tensor of that width, which is how MLflow calls it.
    """
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return InputSchema([Feature(str(n), "double") for n in names])
    width = getattr(model, "n_features_in_", None)
    if isinstance(width, int | np.integer) and width > 0:
        return InputSchema(
            [Feature(str(i), "double") for i in range(int(width))], tensor=(-1, int(width))
        )
    raise _no_signature(uri)


def _no_signature(uri: str) -> ValidationError:
    return ValidationError(
        f"{uri}: the model has no signature, so mloop does not know its input columns",
        hint="log the model with input_example=X[:5] (or signature=infer_signature(X, y_pred))",
    )


_SKLEARN_API_FLAVORS = ("xgboost", "lightgbm")


def _native_scalar(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes serialize as JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
