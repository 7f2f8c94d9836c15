"""A registered version's input signature (column names and types) read from its MLmodel file.

For pages that show a version's inputs without loading the model. A version's files never
change, so each URI is read once per process.
"""

from __future__ import annotations

from functools import lru_cache

from mloop.registry.failures import mlflow_failures
from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings


def version_inputs(settings: Settings, uri: str) -> list[dict[str, object]]:
    """`[{name, type, required}]` of the model's input signature; [] when it has none."""
    configure_mlflow(settings)
    return [dict(item) for item in _inputs(settings.tracking_uri, uri)]


@lru_cache(maxsize=256)
def _inputs(tracking_uri: str, uri: str) -> tuple[tuple[tuple[str, object], ...], ...]:
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    with mlflow_failures(tracking_uri, f"reading the signature of {uri}"):
        signature = mlflow.models.get_model_info(uri).signature
    if signature is None or signature.inputs is None:
        return ()
    out = []
    for index, spec in enumerate(signature.inputs.inputs):
        name = getattr(spec, "name", None) or f"input {index}"
        kind = getattr(spec, "type", None)
        type_name = getattr(kind, "name", None) or str(kind or getattr(spec, "dtype", "?"))
        required = bool(getattr(spec, "required", True))
        out.append((("name", name), ("type", str(type_name)), ("required", required)))
    return tuple(out)
