"""Promotion policies: per target stage, the approver roles and the gates (YAML).

    stages:
      Production:
        approvers: [ml_lead, compliance]       # one approval per role, distinct identities
        gates:
          metrics: {accuracy: 0.75, roc_auc: {min: 0.8}, log_loss: {max: 0.5}}
          validation: {latency_ms: 100, missing_rate: 0.1}
          model_card: true
          drift: {max_psi: 0.2, data: data/recent.csv}

The file is `MLOOP_POLICY_FILE`, else `$MLOOP_HOME/policies.yaml` when it exists; with neither,
no stage needs approval (the embedded quick start promotes directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mloop.errors import ConfigError, NotFoundError
from mloop.registry.stages import Stage, parse_stage
from mloop.security.identities import parse_roles
from mloop.settings import Settings

APPROVABLE = (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bound(_Strict):
    """A metric threshold: at least `min` and/or at most `max`."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a metric bound needs `min` or `max`")
        return self


class ValidationGate(_Strict):
    """The model test suite mloop runs on the held-out split (see governance/validation.py)."""

    latency_ms: float = Field(100.0, gt=0, description="Single-row latency budget (median).")
    missing_rate: float = Field(0.1, ge=0, le=1, description="Share of cells set missing.")
    latency_calls: int = Field(20, ge=1, le=1000)


class DriftGate(_Strict):
    """Evaluation data against the training split: population stability index per feature."""

    max_psi: float = Field(0.2, gt=0)
    data: str | None = Field(None, description="Evaluation data file; the held-out split if unset.")


class Gates(_Strict):
    metrics: dict[str, Bound] = Field(default_factory=dict)
    validation: ValidationGate | None = None
    model_card: bool = False
    drift: DriftGate | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers_are_minimums(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"min": v} if isinstance(v, int | float) else v for k, v in value.items()}
        return value

    @field_validator("validation", "drift", mode="before")
    @classmethod
    def _true_is_defaults(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @property
    def empty(self) -> bool:
        return not (self.metrics or self.validation or self.model_card or self.drift)


class StagePolicy(_Strict):
    approvers: list[str] = Field(default_factory=list)
    gates: Gates = Field(default_factory=Gates)

    @field_validator("approvers")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        return parse_roles(value) if value else []

    @property
    def requires_approval(self) -> bool:
        return bool(self.approvers)


class Policies(_Strict):
    stages: dict[str, StagePolicy] = Field(default_factory=dict)
    source: str | None = None

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_names(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for name, policy in value.items():
            stage = parse_stage(str(name))
            if stage not in APPROVABLE:
                raise ValueError(f"stage {stage.value} cannot have a policy")
            out[stage.value] = policy or {}
        return out

    def for_stage(self, stage: Stage | str) -> StagePolicy:
        """The policy of `stage` (an empty one, needing nothing, when none is declared)."""
        return self.stages.get(parse_stage(stage).value, StagePolicy())


def policy_path(settings: Settings) -> Path | None:
    if settings.policy_file:
        path = Path(settings.policy_file).expanduser()
        if not path.is_file():
            raise NotFoundError(
                f"policy file {str(path)!r} (MLOOP_POLICY_FILE) does not exist",
                hint="see examples/policies.yaml",
            )
        return path
    default = settings.home / "policies.yaml"
    return default if default.is_file() else None


def load_policies(settings: Settings) -> Policies:
    """The promotion policies in force; ConfigError names the file and key when invalid."""
    path = policy_path(settings)
    if path is None:
        return Policies()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with `stages:`")
    try:
        policies = Policies.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError or a stage/role error
        errors = getattr(exc, "errors", None)
        if callable(errors):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors()
            )
        else:
            detail = getattr(exc, "message", str(exc))
        raise ConfigError(f"{path}: invalid policy: {detail}") from None
    policies.source = str(path)
    return policies
