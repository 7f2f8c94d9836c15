"""Semantic version and content hash tags of registered versions.

`mloop.semver` is the previous version's semver (highest among the model's versions) bumped by
the declared change type: `major` (breaking: new inputs or outputs), `minor` (retrained or
improved, same interface; the default) or `patch` (a fix that should not change predictions).
The first version is 1.0.0. `mloop.content_sha256` hashes the model artifact's files
(`mloop.model.digest.artifact_digest`); `resolve` checks it whenever the version is loaded.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from mloop.errors import ValidationError
from mloop.model.digest import artifact_digest

SEMVER_TAG = "mloop.semver"
CHANGE_TAG = "mloop.change_type"
CONTENT_TAG = "mloop.content_sha256"
CHANGE_TYPES = ("major", "minor", "patch")
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def check_change(change: str) -> str:
    """The change type in lower case; ValidationError naming the valid ones otherwise."""
    value = (change or "").strip().lower()
    if value not in CHANGE_TYPES:
        raise ValidationError(f"unknown change type {change!r}: use {', '.join(CHANGE_TYPES)}")
    return value


def parse_semver(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) of `1.2.3`, or None when `text` is not a semver."""
    match = _SEMVER.match(text or "")
    return tuple(int(part) for part in match.groups()) if match else None  # type: ignore[return-value]


def bump(previous: tuple[int, int, int] | None, change: str) -> str:
    """The next semver after `previous` for a change of type `change`."""
    change = check_change(change)
    if previous is None:
        return "1.0.0"
    major, minor, patch = previous
    if change == "major":
        return f"{major + 1}.0.0"
    if change == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def content_sha256(folder: str | Path) -> str:
    """sha256 over the artifact folder's files (`mloop.model.digest.artifact_digest`)."""
    return artifact_digest(folder)


def tag_version(
    client: Any, name: str, version: str, model_uri: str, change: str
) -> dict[str, str]:
    """Set the semver, change type and content hash tags of a new version; return them.

    `client` is the registry's MlflowClient (see `Registry.register`).
    """
    import mlflow  # lazy: mlflow +1.2 s to import; the server starts without it

    change = check_change(change)
    previous = None
    for other in client.search_model_versions(f"name='{name}'"):
        if str(other.version) == str(version):
            continue
        parsed = parse_semver((other.tags or {}).get(SEMVER_TAG))
        if parsed is not None and (previous is None or parsed > previous):
            previous = parsed
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        content = content_sha256(local)
    tags = {SEMVER_TAG: bump(previous, change), CHANGE_TAG: change, CONTENT_TAG: content}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return tags
