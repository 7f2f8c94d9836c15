"""The content digest of an MLflow model folder: what registration records and loading checks.

sha256 over the folder's files in sorted relative-path order: for each file its POSIX path, NUL,
its bytes, NUL. Two files are left out: `MLmodel` (MLflow writes a fresh uuid and timestamp into
it on every log) and `registered_model_meta` (written into each download of a `models:/` URI,
with the name and version it was downloaded as), so a folder hashes the same in the artifact
store, downloaded, or baked into an image (where `IDENTITY_FILE`, also left out, carries it).
Registration stores the digest as the version tag `mloop.content_sha256` (`registry.semver`);
`registry.resolve` checks it on load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

IDENTITY_FILE = "mloop-model.json"  # name, version and digest of a baked folder (build-image)
VOLATILE = frozenset({"MLmodel", "registered_model_meta", IDENTITY_FILE})  # left out of the digest
_BLOCK = 1 << 20


def artifact_digest(path: str | Path, *, volatile: frozenset[str] = VOLATILE) -> str:
    """Hex sha256 of the model folder at `path` (stable across machines and file orders).

    `volatile`: the top-level files left out (the default is what registration uses).
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root).as_posix()
        if relative in volatile:
            continue
        digest.update(relative.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
