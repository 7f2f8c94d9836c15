"""The seed's lifecycle stages, shown to users and stored as MLflow aliases plus a version tag.

MLflow deprecated registry stages in 2.9. mloop keeps the seed's vocabulary (None, Staging,
Production, Archived) on screen, but stores Staging and Production as the aliases `staging` and
`production` (one holder each, loadable as `models:/NAME@production`) and every stage as the
version tag `mloop.stage`, so Archived and None stay visible in the MLflow UI too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from mloop.errors import ValidationError

STAGE_TAG = "mloop.stage"


class Stage(StrEnum):
    """A registered version's lifecycle stage; the value is what users see and the tag stores."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @property
    def alias(self) -> str | None:
        """The MLflow alias that marks the holder of this stage (Staging and Production only)."""
        return _ALIASES.get(self)

    @property
    def exclusive(self) -> bool:
        """True when at most one version holds the stage (it has an alias)."""
        return self.alias is not None


_ALIASES: dict[Stage, str] = {Stage.STAGING: "staging", Stage.PRODUCTION: "production"}
VALID_STAGES = ", ".join(stage.value for stage in Stage)


def parse_stage(text: str | Stage) -> Stage:
    """Parse a stage name in any case (`production`, `PRODUCTION`); raise ValidationError."""
    if isinstance(text, Stage):
        return text
    wanted = str(text).strip().lower()
    for stage in Stage:
        if stage.value.lower() == wanted:
            return stage
    raise ValidationError(
        f"unknown stage {text!r}: valid stages are {VALID_STAGES}",
        hint="e.g. --stage Production",
    )


def stage_for_alias(alias: str) -> Stage | None:
    """The stage an alias stands for (`production` -> Production), or None for other aliases."""
    for stage, name in _ALIASES.items():
        if name == alias:
            return stage
    return None


def stage_of(aliases: Iterable[str], tags: Mapping[str, str]) -> Stage:
    """The stage of a version from its aliases (authoritative) and its `mloop.stage` tag.

    Aliases win because they are what serving loads: a version whose tag says Production but
    whose alias was moved away in MLflow directly no longer serves, so it is not Production.
    """
    held = set(aliases)
    for stage in (Stage.PRODUCTION, Stage.STAGING):
        if stage.alias in held:
            return stage
    if tags.get(STAGE_TAG, "").lower() == Stage.ARCHIVED.value.lower():
        return Stage.ARCHIVED
    return Stage.NONE
