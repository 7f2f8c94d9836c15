"""Load one model from a reference or URI into something the server can call.

A registered reference (`NAME@ALIAS`, `NAME/VERSION`, `models:/...`) is pinned to its concrete
version first, so an alias moving later does not change what this process serves. Models with
the sklearn flavor are loaded natively (one `predict_proba` call gives labels and
probabilities); anything else goes through `mlflow.pyfunc`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import MloopError, NotFoundError, ValidationError
from mloop.model.native import proba_function
from mloop.model.schema import InputSchema
from mloop.registry.refs import parse_model_ref
from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from: display name, concrete version and the URI that pins it."""

    name: str
    version: str
    uri: str
    alias: str | None = None


def resolve_model(reference: str) -> ResolvedModel:
    """Pin a model reference to its concrete version (the one swap point for a registry layer).

    Registered references resolve through the MLflow registry; any other MLflow URI
    (`runs:/...`, a local folder) is served as given, named by the URI itself.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    text = reference.strip()
    if not _looks_registered(text):
        return ResolvedModel(name=text, version="unregistered", uri=text)
    ref = parse_model_ref(text)
    if ref.alias is None:
        return ResolvedModel(ref.name, str(ref.version), ref.uri)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException as exc:
        raise NotFoundError(
            f"model {ref.name!r} has no alias {ref.alias!r}: {_first_line(exc)}"
        ) from exc
    return ResolvedModel(
        ref.name, str(version.version), f"models:/{ref.name}/{version.version}", ref.alias
    )


_URI_SCHEMES = ("runs:/", "file:", "s3://", "gs://", "wasbs://", "abfss://", "http://", "https://")


def check_reference(reference: str) -> str:
    """Return the reference stripped if it is servable; ValidationError when it cannot be.

    Accepts `NAME@ALIAS`, `NAME/VERSION`, `models:/...`, other MLflow URIs (`runs:/...`,
    `s3://...`) and local MLflow model folders.
    """
    text = reference.strip()
    if text.startswith(_URI_SCHEMES):
        return text
    if _is_model_folder(text):
        return text
    parse_model_ref(text)  # raises ValidationError with the accepted forms as a hint
    return text


def _is_model_folder(text: str) -> bool:
    """A local MLflow model folder (it holds an MLmodel file)."""
    return bool(text) and (Path(text).expanduser() / "MLmodel").is_file()


def _looks_registered(text: str) -> bool:
    if text.startswith("models:/"):
        return True
    if text.startswith(_URI_SCHEMES) or "://" in text or _is_model_folder(text):
        return False
    try:
        parse_model_ref(text)
    except ValidationError:
        return False
    return True


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
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    _native: Any = field(default=None, repr=False)
    _pyfunc: Any = field(default=None, repr=False)
    _proba: Any = field(default=None, repr=False)  # native.proba_function(_native)
    _runner: Any = field(default=None, repr=False)  # a custom predict (e.g. onnxruntime)

    @cached_property
    def class_names(self) -> list[str]:
        """Class labels as strings (JSON object keys); empty for models without classes.

        Computed once: every answer with probabilities uses them as keys.
        """
        return [str(c) for c in self.classes] if self.classes is not None else []

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels for each row, and class probabilities (rows x classes) when the model has them.

        Blocking: call it from a worker thread, not the event loop.
        """
        if self._runner is not None:
            return self._runner(frame)
        if self._native is not None:
            if self.classes is not None:
                if self._proba is None:
                    self._proba = proba_function(self._native)
                probabilities = np.asarray(self._proba(frame), dtype=np.float64)
                labels = self._native.classes_[probabilities.argmax(axis=1)]
                return labels, probabilities
            return np.asarray(self._native.predict(frame)), None
        output = self._pyfunc.predict(frame)
        if isinstance(output, pd.DataFrame):
            output = output.iloc[:, 0]
        return np.asarray(output), None


def load_model(reference: str, settings: Settings) -> LoadedModel:
    """Resolve and load one model; every failure is an MloopError saying what went wrong."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure_mlflow(settings)
    resolved = resolve_model(reference)
    try:
        info = mlflow.models.get_model_info(resolved.uri)
    except MlflowException as exc:
        raise NotFoundError(f"cannot find model {resolved.uri}: {_first_line(exc)}") from exc
    except OSError as exc:
        raise NotFoundError(f"cannot read model {resolved.uri}: {exc}") from exc
    try:
        schema = InputSchema.from_signature(info.signature)
    except ValidationError as exc:
        raise ValidationError(f"{resolved.uri}: {exc.message}", hint=exc.hint) from exc
    try:
        runner = None
        if "sklearn" in info.flavors:
            native = mlflow.sklearn.load_model(resolved.uri)
            classes = getattr(native, "classes_", None)
            if not hasattr(native, "predict_proba"):
                classes = None
            flavor, pyfunc = "sklearn", None
        elif "onnx" in info.flavors:
            from mloop.model.onnx import load_onnx

            runner, classes = load_onnx(resolved.uri, info.metadata)
            native, pyfunc, flavor = None, None, "onnx"
        else:
            native, classes = None, None
            pyfunc = mlflow.pyfunc.load_model(resolved.uri)
            flavor = next((f for f in info.flavors if f != "python_function"), "python_function")
    except MloopError:
        raise
    except Exception as exc:  # any loader failure (missing file, unpickling, version skew)
        raise MloopError(
            f"cannot load model {resolved.uri}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return LoadedModel(
        name=resolved.name,
        version=resolved.version,
        uri=resolved.uri,
        flavor=flavor,
        run_id=info.run_id,
        schema=schema,
        classes=[_native_scalar(c) for c in classes] if classes is not None else None,
        alias=resolved.alias,
        source=reference,
        _native=native,
        _pyfunc=pyfunc,
        _runner=runner,
    )


def _native_scalar(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes serialize as JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
