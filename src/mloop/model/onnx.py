"""Serve an ONNX model (from `mloop optimize`) with onnxruntime.

The graph takes the validated frame's columns (floats with NaN for missing, strings with ""
for missing) and answers `label` and `probabilities`, as the scikit-learn path does. One
intra-op thread per session: the server gets its parallelism from workers and batching.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import require

MATRIX_INPUT = "input"  # the single float matrix input of a graph without per-column inputs


def load_onnx(uri: str, metadata: dict[str, Any] | None) -> tuple[Any, list[Any] | None]:
    """(runner(frame) -> (labels, probabilities), classes) for the ONNX model at `uri`."""
    ort = require("onnxruntime", "onnx")
    import mlflow.onnx  # lazy: mlflow +1.2 s to import, and onnx is the optional extra mloop[onnx]

    proto = mlflow.onnx.load_model(uri)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    inputs = session.get_inputs()
    classes = json.loads((metadata or {}).get("mloop.classes", "null")) or None
    ordered = np.asarray(classes if classes is not None else [])

    def run(frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = session.run(None, feeds(inputs, frame))
        if len(outputs) > 1 and classes is not None:
            probabilities = np.asarray(outputs[1], dtype=np.float64)
            # Labels as the scikit-learn path picks them: the first most probable class.
            return ordered[probabilities.argmax(axis=1)], probabilities
        return np.asarray(outputs[0]).reshape(-1), None

    return run, classes


def feeds(session_inputs: list[Any], frame: Any) -> dict[str, np.ndarray]:
    """onnxruntime inputs from a validated frame: float32 columns (NaN for missing) and
    strings ("" for missing), or one float32 matrix."""
    if len(session_inputs) == 1 and session_inputs[0].name == MATRIX_INPUT:
        return {MATRIX_INPUT: frame.to_numpy(dtype=np.float32, na_value=np.nan)}
    out = {}
    for spec in session_inputs:
        column = frame[spec.name]
        if spec.type == "tensor(string)":
            if pd.api.types.is_datetime64_any_dtype(column):
                text = column.dt.strftime("%Y-%m-%dT%H:%M:%S")
            else:
                text = column.astype(object)
            values = text.where(column.notna(), "").to_numpy(dtype=object)
            out[spec.name] = values.astype(str).astype(object).reshape(-1, 1)
        else:
            dtype = np.float32 if spec.type == "tensor(float)" else np.float64
            out[spec.name] = column.to_numpy(dtype=dtype, na_value=np.nan).reshape(-1, 1)
    return out
