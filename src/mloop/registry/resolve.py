"""Turn what a user typed (`churn@production`, `churn/3`, `models:/...`, `runs:/...`, a folder)
into a pinned model URI, and load it.

This is the one place that reads an alias to serve a version: the model layer below loads
pinned URIs only, so an alias moving later never changes what a process already serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.errors import ModelIntegrityError, NotFoundError, ValidationError
from mloop.model.digest import IDENTITY_FILE, artifact_digest
from mloop.registry.integrity import RefusalHook, verify_version
from mloop.registry.records import ResolvedModel
from mloop.registry.refs import ModelRef, parse_model_ref
from mloop.registry.tracking import client_for, configure_mlflow
from mloop.settings import Settings

if TYPE_CHECKING:  # lazy: the loader imports the ML stack; `mloop serve` checks a reference
    from mloop.model.loader import LoadedModel  # before starting workers without loading it

UNREGISTERED = "unregistered"  # the version of a URI or folder served as given
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


def resolve_model(reference: str, settings: Settings) -> ResolvedModel:
    """Pin a reference to its concrete version, reading the registry these settings name.

    Any other MLflow URI (`runs:/...`, a local folder) is served as given, named by itself.
    """
    text = reference.strip()
    if _is_model_folder(text):
        identity = folder_identity(text)
        if identity is not None:
            return ResolvedModel(identity["name"], identity["version"], text, identity.get("alias"))
    if not _looks_registered(text):
        return ResolvedModel(name=text, version=UNREGISTERED, uri=text)
    return resolve_ref(parse_model_ref(text), settings)


def folder_identity(folder: str | Path) -> dict[str, str] | None:
    """The registered name, version and content digest a model folder was baked with
    (`IDENTITY_FILE`, written by `mloop build-image`), or None for a plain folder."""
    path = Path(folder).expanduser() / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return {key: str(data[key]) for key in ("name", "version", "content_sha256")} | (
            {"alias": str(data["alias"])} if data.get("alias") else {}
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"{path} is not a valid model identity file: {exc}") from exc


def resolve_ref(ref: ModelRef, settings: Settings) -> ResolvedModel:
    """The version `ref` names now (its alias read with a client bound to `settings`).

    A client bound to the settings, not MLflow's process-wide URI: poll threads must not set
    that, and tests and notebooks run several stores in one process.
    """
    if ref.alias is None:
        return ResolvedModel(ref.name, str(ref.version), ref.uri)
    # lazy: mlflow +1.2 s to import; the server starts without it
    from mlflow.exceptions import MlflowException

    try:
        version = client_for(settings).get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException as exc:
        raise NotFoundError(
            f"model {ref.name!r} has no alias {ref.alias!r}: {_first_line(exc)}"
        ) from exc
    number = str(version.version)
    return ResolvedModel(ref.name, number, f"models:/{ref.name}/{number}", ref.alias)


def load_model(
    reference: str, settings: Settings, *, on_refused: RefusalHook | None = None
) -> LoadedModel:
    """Resolve `reference` against the registry in `settings` and load that pinned version.

    A registered version is loaded only if its files match the content digest recorded at
    registration (`integrity.verify_version`): otherwise ModelIntegrityError, after telling
    `on_refused` (the caller's audit).
    """
    configure_mlflow(settings)
    resolved = resolve_model(reference, settings)
    try:
        if _is_model_folder(resolved.uri):
            _verify_folder(resolved)
        elif resolved.version != UNREGISTERED:
            verify_version(resolved.name, resolved.version, settings)
    except ModelIntegrityError as exc:
        if on_refused is not None:
            on_refused(exc)
        raise
    from mloop.model.loader import load_model as load_pinned  # lazy: see the imports

    return load_pinned(
        resolved.uri,
        name=resolved.name,
        version=resolved.version,
        alias=resolved.alias,
        source=reference,
    )


def _verify_folder(resolved: ResolvedModel) -> None:
    """A baked folder (one with an identity file) must still hash to the digest it was baked
    with: the image serves without the registry, so the check travels with the files."""
    identity = folder_identity(resolved.uri)
    if identity is None:
        return
    found = artifact_digest(resolved.uri)
    if found != identity["content_sha256"]:
        raise ModelIntegrityError(
            resolved.name, resolved.version, expected=identity["content_sha256"], found=found
        )


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
