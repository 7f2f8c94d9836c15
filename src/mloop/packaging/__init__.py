"""Packaging: container images that serve one registered model version without the registry.

`image.build_model_image` builds mloop's server image (the repository's Dockerfile) and a model
image on top of it; `context` prepares what goes in (the version's files, checked against their
recorded digest, its pinned requirements, OCI labels); `builder` runs docker or podman.
"""

from __future__ import annotations
