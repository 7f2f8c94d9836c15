"""Check a registered version's files against the content digest recorded at registration.

`Registry.register` tags each version with `mloop.content_sha256` (`semver.tag_version`, over
`mloop.model.digest.artifact_digest`). `verify_version` recomputes it from the artifact store
before the version is loaded: a mismatch raises `ModelIntegrityError` naming both digests.
Versions registered before the tag existed load with a warning; versions tagged before
`registered_model_meta` was left out of the digest match through `LEGACY_VOLATILE` on a
download of their source. The registry records nothing:
callers that audit (serving, jobs) record the refusal themselves (`on_refused`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mloop.errors import ModelIntegrityError
from mloop.model.digest import artifact_digest
from mloop.registry.failures import mlflow_failures
from mloop.registry.semver import CONTENT_TAG
from mloop.registry.tracking import client_for
from mloop.settings import Settings

log = logging.getLogger("mloop.registry")

# Until issue 14 the tag hashed a download of the version's source, `registered_model_meta`
# (which MLflow writes into downloads) included.
LEGACY_VOLATILE = frozenset({"MLmodel"})

# Told every refusal before it is raised (an audit writer, a metric); must not raise.
RefusalHook = Callable[[ModelIntegrityError], None]


def verify_version(
    name: str, version: str, settings: Settings, *, folder: str | Path | None = None
) -> str | None:
    """The recorded digest of `name`/`version` once its files match it; None when none is
    recorded (a warning is logged). `folder`: a local copy to hash instead of the store's.

    Raises ModelIntegrityError on a mismatch.
    """
    client = client_for(settings)
    with mlflow_failures(settings.tracking_uri, f"reading version {version} of '{name}'"):
        expected = (client.get_model_version(name, version).tags or {}).get(CONTENT_TAG)
        if expected is None:
            log.warning(
                "model %s version %s has no %s tag (registered before integrity checks): "
                "loading it unchecked",
                name,
                version,
                CONTENT_TAG,
            )
            return None
        if folder is not None:
            found = artifact_digest(folder)
        else:
            found = _store_digest(client.get_model_version_download_uri(name, version), settings)
        if (
            found != expected
            and _legacy_digest(_source(client, name, version), settings) == expected
        ):
            found = expected  # tagged the old way: the files are the registered ones
    if found != expected:
        raise ModelIntegrityError(name, version, expected=expected, found=found)
    return expected


def _store_digest(artifact_uri: str, settings: Settings) -> str:
    """Digest of the artifacts at `artifact_uri`: in place when local, else a temporary copy."""
    local = _local_path(artifact_uri)
    if local is not None:
        return artifact_digest(local)
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    with tempfile.TemporaryDirectory(prefix="mloop-digest-") as tmp:
        copy = _download(mlflow, artifact_uri, tmp, settings)
        return artifact_digest(copy)


def _source(client: Any, name: str, version: str) -> str:
    return str(client.get_model_version(name, version).source)


def _legacy_digest(source: str, settings: Settings) -> str:
    """The digest as registration computed it before issue 14 (a download of the source)."""
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    with tempfile.TemporaryDirectory(prefix="mloop-digest-") as tmp:
        copy = _download(mlflow, source, tmp, settings)
        return artifact_digest(copy, volatile=LEGACY_VOLATILE)


def _download(mlflow: Any, uri: str, folder: str, settings: Settings) -> str:
    uris = {"tracking_uri": settings.tracking_uri, "registry_uri": settings.tracking_uri}
    return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder, **uris)


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and Path(uri).is_dir():
        return Path(uri)
    return None
