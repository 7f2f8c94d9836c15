"""mloop's layer over MLflow's model registry: references, stages as aliases, history.

Names are imported lazily so `mloop.registry.refs` stays cheap for the server's hot path.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ModelRef": "mloop.registry.refs",
    "parse_model_ref": "mloop.registry.refs",
    "Stage": "mloop.registry.stages",
    "parse_stage": "mloop.registry.stages",
    "Registry": "mloop.registry.service",
    "ModelSummary": "mloop.registry.records",
    "ResolvedModel": "mloop.registry.records",
    "Transition": "mloop.registry.records",
    "VersionDetails": "mloop.registry.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mloop.registry' has no attribute {name!r}")
