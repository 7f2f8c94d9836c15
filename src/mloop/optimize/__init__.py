"""`mloop optimize`: compile a registered scikit-learn model to ONNX and register the result.

The ONNX version is registered under the same name as a new version tagged
`mloop.optimized_from=<name>/<version>`, after a parity check on held-out rows (the same labels,
probabilities within `tolerance`). The server runs it with onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.data import read_table
from mloop.errors import CriteriaNotMetError, NotFoundError, ValidationError, require
from mloop.model.onnx import feeds
from mloop.model.schema import InputSchema
from mloop.registry.resolve import resolve_model
from mloop.registry.tracking import configure_mlflow, ensure_experiment, register_version
from mloop.settings import Settings

__all__ = ["OptimizeResult", "ParityError", "optimize"]

TAG = "mloop.optimized_from"


class ParityError(CriteriaNotMetError):
    """The ONNX model does not answer like the original on the held-out rows."""


@dataclass
class OptimizeResult:
    name: str
    source_version: str
    version: str | None
    rows_checked: int
    labels_equal: bool
    max_abs_diff: float
    tolerance: float
    ties: int = 0  # rows whose two best classes are within the tolerance (not compared)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def optimize(
    reference: str,
    settings: Settings,
    *,
    data: Path | None = None,
    rows: int = 2000,
    tolerance: float = 1e-5,
    register: bool = True,
    progress: Any = None,
) -> OptimizeResult:
    """Convert, check parity, register. `progress(step)` is called before each stage."""
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    require("onnxruntime", "onnx")
    require("skl2onnx", "onnx")
    # lazy: imports skl2onnx, the optional extra mloop[onnx] checked just above
    from mloop.optimize.convert import to_onnx

    step = progress or (lambda _name: None)
    configure_mlflow(settings)
    resolved = resolve_model(reference, settings)
    if resolved.version == "unregistered":
        raise ValidationError(
            f"{reference!r} is not a registered model", hint="use NAME/VERSION or NAME@ALIAS"
        )
    step("load")
    try:
        info = mlflow.models.get_model_info(resolved.uri)
    except mlflow.exceptions.MlflowException as exc:
        raise NotFoundError(
            f"cannot find model {resolved.uri}: {str(exc).splitlines()[0]}"
        ) from exc
    if "sklearn" not in info.flavors:
        raise ValidationError(
            f"{resolved.name}/{resolved.version} is a {', '.join(info.flavors)} model; "
            "only scikit-learn models can be optimized"
        )
    schema = InputSchema.from_signature(info.signature)
    model = mlflow.sklearn.load_model(resolved.uri)
    step("convert")
    onnx_model = to_onnx(model, schema)
    step("parity")
    frame = _held_out(resolved.uri, schema, data, rows)
    expected = model.predict_proba(frame) if hasattr(model, "predict_proba") else None
    labels, probabilities = run_onnx(onnx_model.SerializeToString(), frame)
    wanted = np.asarray(model.predict(frame))
    decided = np.ones(len(frame), dtype=bool)
    if expected is not None and expected.shape[1] > 1:
        # Rows whose two best classes are within the tolerance are ties either side may break.
        top = np.sort(expected, axis=1)
        decided = (top[:, -1] - top[:, -2]) > tolerance
    labels_equal = bool(np.array_equal(np.asarray(labels)[decided], wanted[decided]))
    diff = (
        float(np.abs(probabilities - expected).max())
        if expected is not None and probabilities is not None
        else 0.0
    )
    result = OptimizeResult(
        resolved.name, resolved.version, None, len(frame), labels_equal, diff, tolerance,
        ties=int((~decided).sum()),
    )  # fmt: skip
    if not labels_equal or diff > tolerance:
        raise ParityError(
            f"the ONNX model differs from {resolved.name}/{resolved.version} on held-out rows: "
            f"labels {'equal' if labels_equal else 'differ'}, largest probability difference "
            f"{diff:.3g} (tolerance {tolerance:g}); nothing registered",
            hint="serve the scikit-learn model as it is",
        )
    if not register:
        return result
    step("register")
    classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(model, "classes_", [])]
    experiment_id = ensure_experiment(settings.experiment, settings)
    source = f"{resolved.name}/{resolved.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"optimize {source}") as run:
        mlflow.log_metrics({"parity_max_abs_diff": diff, "parity_rows": len(frame)})
        mlflow.set_tags({TAG: source, "mloop.kind": "onnx"})
        logged = mlflow.onnx.log_model(
            onnx_model,
            name="model",
            signature=info.signature,
            metadata={"mloop.classes": json.dumps(classes), TAG: source},
        )
    result.version = register_version(
        logged.model_uri,
        resolved.name,
        {TAG: source, "mloop.stage": "None", "mloop.run_id": run.info.run_id},
    )
    return result


def run_onnx(model_bytes: bytes, frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and probabilities (float64) from an ONNX model on a validated frame."""
    ort = require("onnxruntime", "onnx")
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds(session.get_inputs(), frame))
    labels = np.asarray(outputs[0]).reshape(-1)
    probabilities = np.asarray(outputs[1], dtype=np.float64) if len(outputs) > 1 else None
    return labels, probabilities  # labels as ONNX gives them (ties may break differently)


def _held_out(uri: str, schema: Any, data: Path | None, rows: int) -> Any:
    """Rows to compare on: `data` (held-out rows, signature columns) or the logged example."""
    if data is not None:
        table = read_table(data)
        missing = [c for c in schema.names if c not in table.columns]
        if missing:
            raise ValidationError(f"{data} has no column(s) {', '.join(missing)}")
        table = table.loc[:, list(schema.names)].head(rows)
    else:
        import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

        local = mlflow.artifacts.download_artifacts(uri)
        table = mlflow.models.Model.load(local).load_input_example(local)
        if table is None:
            raise ValidationError(
                "the model has no logged input example to check parity on",
                hint="pass --data with held-out rows",
            )
        table = pd.DataFrame(table)
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    return schema.to_frame([{k: _plain(v) for k, v in r.items()} for r in records])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
