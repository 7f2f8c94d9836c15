"""What the registry layer returns: plain frozen records with a JSON-ready `to_dict`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from mloop.registry.stages import Stage


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Stage):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Fields as JSON-ready values (datetimes as ISO 8601, stages as their names)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Transition(_Record):
    """One stage change of a version, as recorded in the platform database.

    `replaced_version` is the version rollback returns to: for a promotion, the version that
    held `to_stage` before; for a rollback, the version the restored version had replaced.
    `archived_version` is set on the results of `promote` and `rollback` only (not stored): the
    version this change pushed out of `to_stage` into Archived.
    """

    model_name: str
    version: str
    from_stage: Stage
    to_stage: Stage
    replaced_version: str | None
    actor: str
    reason: str | None
    created_at: datetime
    id: int | None = None
    archived_version: str | None = None


@dataclass(frozen=True)
class ModelSummary(_Record):
    """One registered model, as `mloop models list` shows it."""

    name: str
    latest_version: str | None
    version_count: int
    staging_version: str | None
    production_version: str | None
    description: str | None
    last_updated: datetime | None


@dataclass(frozen=True)
class VersionDetails(_Record):
    """Everything about one registered version: stage, run results, lineage and history."""

    name: str
    version: str
    stage: Stage
    aliases: list[str]
    uri: str
    source: str
    run_id: str | None
    status: str
    description: str | None
    created_at: datetime | None
    last_updated: datetime | None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)
    history: list[Transition] = field(default_factory=list)


@dataclass(frozen=True)
class ResolvedModel(_Record):
    """A reference pinned to one version: `uri` is `models:/NAME/VERSION`, never an alias.

    `alias` is the alias it was resolved through, if any; a URI that is not registered
    (`runs:/...`, a folder) is its own name, with version `unregistered`.
    """

    name: str
    version: str
    uri: str
    alias: str | None = None
