"""`build_model_image`: mloop's server image (the repository's Dockerfile), then one model
version baked on top of it (`context.prepare_context`), as two builds.

Two builds keep the slow part cached: the server image changes with mloop's source, the model
image with the model. An existing server image (`server_image`, e.g. from your registry) skips
the first build, which is also the way when mloop was installed from a wheel, without its
Dockerfile.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import mloop
from mloop import __version__
from mloop.errors import ConfigError
from mloop.packaging.builder import DEFAULT_BASE_IMAGE, BuildOptions, build_command, run_build
from mloop.packaging.context import ModelContext, prepare_context
from mloop.settings import Settings

SERVER_TAG = f"localhost/mloop:{__version__}"


@dataclass(frozen=True)
class ImagePlan:
    """What `build_model_image` builds (or, on a dry run, would build)."""

    tag: str
    server_image: str
    context: ModelContext
    commands: list[list[str]]  # in order: the server image (unless given), the model image


def source_root() -> Path | None:
    """The checkout mloop runs from (it holds the Dockerfile), or None for a wheel install."""
    root = Path(mloop.__file__).resolve().parents[2]
    if (root / "Dockerfile").is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


def build_model_image(
    reference: str,
    tag: str,
    settings: Settings,
    options: BuildOptions,
    context_dir: Path,
    *,
    server_image: str | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
    extras: str | None = None,
    dry_run: bool = False,
) -> ImagePlan:
    """Prepare the context in `context_dir`, then build the server and the model image.

    `dry_run`: prepare and return the plan without running a build.
    """
    commands: list[list[str]] = []
    root = source_root()
    if server_image is None:
        if root is None:
            raise ConfigError(
                "mloop's Dockerfile is not here (mloop is not running from its source checkout)",
                hint="pass --server-image IMAGE: an image built from mloop's Dockerfile",
            )
        server_image = SERVER_TAG
        args = {"BASE_IMAGE": base_image, "MLOOP_VERSION": __version__}
        if extras is not None:
            args["MLOOP_EXTRAS"] = extras
        commands.append(build_command(options, root, server_image, build_args=args))
    revision = _git_revision(root) if root is not None else ""
    context = prepare_context(
        reference, settings, context_dir, server_image=server_image, revision=revision
    )
    commands.append(build_command(options, context.path, tag, dockerfile=context.dockerfile))
    plan = ImagePlan(tag=tag, server_image=server_image, context=context, commands=commands)
    if not dry_run:
        for command in commands:
            run_build(command)
    return plan


def _git_revision(root: Path) -> str:
    """The checkout's commit (org.opencontainers.image.revision), "" outside git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
