"""One typed Settings object, read from `MLOOP_*` environment variables once per process.

Paths default under `MLOOP_HOME` (`./.mloop`), so a fresh checkout needs nothing started by
hand: SQLite files for MLflow and for mloop's own state, and a local artifact folder.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "MLOOP_"

# Settings whose default is computed from MLOOP_HOME rather than fixed.
_DERIVED_FROM_HOME = {"tracking_uri", "artifact_root", "database_url"}


class Settings(BaseSettings):
    """Effective configuration. Every field is an `MLOOP_<FIELD>` environment variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(Path(".mloop"), description="Folder for embedded state and artifacts.")
    tracking_uri: str = Field("", description="MLflow tracking and registry URI.")
    artifact_root: str = Field("", description="Where MLflow stores model artifacts.")
    database_url: str = Field("", description="SQLAlchemy URL of mloop's platform database.")
    experiment: str = Field("mloop", description="MLflow experiment that `mloop train` logs to.")
    host: str = Field("127.0.0.1", description="Address `mloop serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `mloop serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Server worker processes.")
    max_batch_rows: int = Field(1000, ge=1, description="Largest /predict/batch request.")
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body, in bytes."
    )
    fallback_model_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Model URIs tried in order when the served reference cannot be loaded.",
    )
    log_inputs: bool = Field(True, description="Keep each prediction's input in the log.")
    log_level: str = Field("info", description="Server log level.")

    @field_validator("fallback_model_uris", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list in the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def model_post_init(self, __context: object) -> None:
        self.home = self.home.expanduser().resolve()
        if not self.tracking_uri:
            self.tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.artifact_root:
            self.artifact_root = str(self.home / "artifacts")
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'mloop.db'}"

    def ensure_home(self) -> Path:
        """Create MLOOP_HOME (and the artifact folder when local) and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        if "://" not in self.artifact_root:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        return self.home

    def sources(self) -> dict[str, str]:
        """Where each value came from: the environment variable, MLOOP_HOME, or the default."""
        out = {}
        for name in type(self).model_fields:
            var = ENV_PREFIX + name.upper()
            if var in os.environ:
                out[name] = f"env {var}"
            elif name in _DERIVED_FROM_HOME:
                out[name] = "derived from MLOOP_HOME"
            else:
                out[name] = "default"
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and `mloop` subcommands that change the env)."""
    get_settings.cache_clear()
