"""Run an image build with docker or podman, whichever works here.

A `docker` binary without a reachable engine is common (a CLI installed, no daemon), so the
automatic choice asks each tool for `info` rather than only finding it on PATH. podman builds
with `--format docker`: OCI images drop HEALTHCHECK.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mloop.errors import ConfigError, MloopError, ServiceUnavailableError

BUILDERS = ("docker", "podman")
_INFO_TIMEOUT = 20.0


DEFAULT_BASE_IMAGE = "python:3.11-slim"  # the Dockerfile's default BASE_IMAGE


@dataclass(frozen=True)
class BuildOptions:
    """What every build of one `mloop build-image` shares."""

    builder: str  # "docker" or "podman"
    network: str | None = None  # e.g. "host": builds reach the package index only that way here
    ca_bundle: Path | None = None  # passed as the build secret `ca` (pip's PIP_CERT)


def find_builder(choice: str = "auto") -> str:
    """`docker` or `podman`: the one asked for if it is installed, else the first that answers.

    Raises ServiceUnavailableError naming both when neither works.
    """
    if choice != "auto":
        if choice not in BUILDERS:
            raise ConfigError(f"unknown builder {choice!r}", hint="use auto, docker or podman")
        if shutil.which(choice) is None:
            raise ServiceUnavailableError(f"{choice} is not installed (not on PATH)")
        return choice
    for name in BUILDERS:
        if shutil.which(name) is not None and builder_works(name):
            return name
    raise ServiceUnavailableError(
        "neither docker nor podman works here: cannot build an image",
        hint="install podman (apt-get install podman) or start the Docker engine",
    )


def builder_works(name: str) -> bool:
    """True when `name info` succeeds (the engine or podman's storage is usable)."""
    try:
        done = subprocess.run(
            [name, "info"], capture_output=True, timeout=_INFO_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def build_command(
    options: BuildOptions,
    context: Path,
    tag: str,
    *,
    dockerfile: Path | None = None,
    build_args: dict[str, str] | None = None,
) -> list[str]:
    """The `docker build` / `podman build` command line for `context`, tagged `tag`."""
    command = [options.builder, "build", "-t", tag]
    if options.builder == "podman":
        command += ["--format", "docker"]
    if options.network:
        command += ["--network", options.network]
    if options.ca_bundle is not None:
        command += ["--secret", f"id=ca,src={options.ca_bundle}"]
    for key, value in (build_args or {}).items():
        command += ["--build-arg", f"{key}={value}"]
    if dockerfile is not None:
        command += ["-f", str(dockerfile)]
    command.append(str(context))
    return command


def run_build(command: list[str]) -> None:
    """Run a build, its output streaming to the terminal; MloopError when it fails."""
    try:
        done = subprocess.run(command, check=False)
    except OSError as exc:
        raise ServiceUnavailableError(f"cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise MloopError(
            f"the image build failed ({command[0]} exit {done.returncode})",
            hint="the build output above names the failing step; rerun with --dry-run to "
            "see the context and command",
        )
