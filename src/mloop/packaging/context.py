"""The build context of a model image: one registered version's files, its pinned requirements, and
a Dockerfile that bakes them onto mloop's server image.

Like `mlflow models build-docker`: the container serves the model from a folder inside the
image, so it starts without reaching the registry; `IDENTITY_FILE` in that folder gives the
server the version's name, version and digest, checked again when the container loads it. The
version is pinned when the context is made (an alias moving later changes nothing) and its files
are checked against the content digest recorded at registration (`registry.integrity`) before
they go in.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mloop import __version__
from mloop.errors import NotFoundError
from mloop.model.digest import IDENTITY_FILE, artifact_digest
from mloop.registry.integrity import verify_version
from mloop.registry.refs import parse_model_ref
from mloop.registry.resolve import resolve_ref
from mloop.registry.tracking import configure_mlflow
from mloop.settings import Settings

log = logging.getLogger("mloop.packaging")

MODEL_DIR = "/opt/mloop/model"  # where the image holds the model; `mloop serve` serves it
USER = "10001:10001"  # the server image's non-root user (Dockerfile)
LABEL_PREFIX = "io.mloop.model"


@dataclass(frozen=True)
class ModelContext:
    """A prepared build context: the folder, what it holds, and the image labels."""

    path: Path
    name: str
    version: str
    digest: str  # "sha256:<hex>" of the artifact files (model.digest)
    verified: bool  # the digest matched one recorded at registration
    requirements: list[str]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def dockerfile(self) -> Path:
        return self.path / "Dockerfile"


def prepare_context(
    reference: str, settings: Settings, dest: Path, *, server_image: str, revision: str = ""
) -> ModelContext:
    """Resolve `reference` (NAME@ALIAS, NAME/VERSION), copy that version's artifacts into
    `dest/model`, check them, and write `dest/requirements.txt` and `dest/Dockerfile`.

    Raises NotFoundError for an unknown model or alias, ModelIntegrityError when the files
    differ from the recorded digest.
    """
    # lazy: mlflow +1.2 s to import; only this command downloads artifacts
    import mlflow

    ref = parse_model_ref(reference)
    configure_mlflow(settings)
    resolved = resolve_ref(ref, settings)
    dest.mkdir(parents=True, exist_ok=True)
    model = dest / "model"
    if model.exists():
        shutil.rmtree(model)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri, dst_path=str(model))
    except mlflow.exceptions.MlflowException as exc:
        raise NotFoundError(f"cannot download {resolved.uri}: {exc.message}") from exc
    local_path = Path(local)
    if local_path != model:  # some stores nest the files one folder down
        for item in local_path.iterdir():
            shutil.move(str(item), model / item.name)
        local_path.rmdir()
    if not (model / "MLmodel").is_file():
        raise NotFoundError(f"{resolved.uri} holds no MLmodel file: not an MLflow model")
    recorded = verify_version(resolved.name, resolved.version, settings, folder=model)
    content = recorded or artifact_digest(model)
    digest = f"sha256:{content}"
    _detach_logged_model(model / "MLmodel")
    identity = {"name": resolved.name, "version": resolved.version, "content_sha256": content}
    if resolved.alias:
        identity["alias"] = resolved.alias
    (model / IDENTITY_FILE).write_text(json.dumps(identity, indent=2) + "\n")
    requirements = _requirements(model)
    (dest / "requirements.txt").write_text("".join(f"{line}\n" for line in requirements))
    labels = image_labels(
        name=resolved.name,
        version=resolved.version,
        digest=digest,
        reference=str(ref),
        alias=resolved.alias,
        run_id=_run_id(model),
        server_image=server_image,
        revision=revision,
    )
    context = ModelContext(
        path=dest,
        name=resolved.name,
        version=resolved.version,
        digest=digest,
        verified=recorded is not None,
        requirements=requirements,
        labels=labels,
    )
    context.dockerfile.write_text(model_dockerfile(server_image, labels))
    return context


def image_labels(
    *,
    name: str,
    version: str,
    digest: str,
    reference: str,
    alias: str | None,
    run_id: str | None,
    server_image: str,
    revision: str = "",
) -> dict[str, str]:
    """OCI annotations (org.opencontainers.image.*) plus the model's own (io.mloop.model.*)."""
    labels = {
        "org.opencontainers.image.title": f"{name}",
        "org.opencontainers.image.description": f"mloop serving model {name} version {version}",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.base.name": server_image,
        "io.mloop.version": __version__,
        f"{LABEL_PREFIX}.name": name,
        f"{LABEL_PREFIX}.version": version,
        f"{LABEL_PREFIX}.digest": digest,
        f"{LABEL_PREFIX}.reference": reference,
    }
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if alias:
        labels[f"{LABEL_PREFIX}.alias"] = alias
    if run_id:
        labels[f"{LABEL_PREFIX}.run_id"] = run_id
    return labels


def model_dockerfile(server_image: str, labels: dict[str, str]) -> str:
    """The Dockerfile of a model image: requirements (a cached layer when they do not change)
    before the model files, labels last, the server's non-root user and read-only-safe paths."""
    label_lines = " \\\n      ".join(f"{key}={_quote(value)}" for key, value in labels.items())
    return f"""\
# Made by `mloop build-image`: one model version baked onto mloop's server image.
FROM {server_image}
USER root
COPY requirements.txt /opt/mloop/requirements.txt
# The model's pinned requirements; `pip check` fails the build if they break mloop's own.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca,required=false \\
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \\
    if [ -s /opt/mloop/requirements.txt ]; then \\
      pip install --no-cache-dir --disable-pip-version-check -r /opt/mloop/requirements.txt \\
      && pip check; \\
    fi
COPY model/ {MODEL_DIR}/
LABEL {label_lines}
USER {USER}
CMD ["serve", "{MODEL_DIR}"]
"""


def _requirements(model: Path) -> list[str]:
    """The model's requirements.txt lines (MLflow writes it at log time), comments dropped."""
    path = model / "requirements.txt"
    if not path.is_file():
        log.warning("%s has no requirements.txt: the image has mloop's dependencies only", model)
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _detach_logged_model(mlmodel: Path) -> None:
    """Drop MLflow 3's `model_id` from the baked MLmodel: with it, loading the folder asks the
    tracking store for that logged model, which the container cannot reach. MLmodel is outside
    the content digest (`model.digest.VOLATILE`), so the digest still holds."""
    lines = mlmodel.read_text().splitlines(keepends=True)
    mlmodel.write_text("".join(line for line in lines if not line.startswith("model_id:")))


def _run_id(model: Path) -> str | None:
    for line in (model / "MLmodel").read_text().splitlines():
        if line.startswith("run_id:"):
            return line.split(":", 1)[1].strip() or None
    return None


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
