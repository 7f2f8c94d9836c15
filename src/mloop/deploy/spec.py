"""The deployment spec: a named set of model variants and the policy that splits traffic.

A spec comes from YAML (`mloop deploy apply`) or a REST body, and is checked in two steps:
`parse_spec` checks its shape (policy, weights summing to 100, unique variant names, sections
naming known variants) and `check_models` resolves every model reference in the registry, so a
bad spec is refused before anything is written.

Canary progress (`canary.percent`, `status`, `last_step_at`, `reason`) lives in the spec too:
each revision then says exactly how traffic was split, and rolling back a revision restores it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from mloop.errors import MloopError, NotFoundError, ValidationError

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"


class Policy(StrEnum):
    """How traffic is split between the variants."""

    SINGLE = "single"
    AB = "ab"
    CANARY = "canary"
    SHADOW = "shadow"
    BLUE_GREEN = "blue_green"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Strict):
    """One model behind the deployment: `churn@production`, `churn/7` or `models:/...`."""

    name: str = Field(..., pattern=_NAME, description="Variant name, unique in the deployment.")
    model: str = Field(..., min_length=1, description="Model reference.")
    weight: float | None = Field(None, ge=0, le=100, description="Percent of traffic (A/B).")


class ABPolicy(_Strict):
    sticky_key: str = Field("user_id", description="Row field (or X-User-Id header) to stick on.")
    force_header: str = Field("X-Variant", description="Header that forces a variant.")


class SLO(_Strict):
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_p95_ms: float = Field(250.0, gt=0)
    min_requests: int = Field(100, ge=0, description="Requests needed before a step is judged.")


class CanaryPolicy(_Strict):
    candidate: str
    start_percent: float = Field(5.0, ge=0, le=100)
    step_percent: float = Field(10.0, gt=0, le=100)
    interval_seconds: float = Field(300.0, gt=0)
    max_percent: float = Field(100.0, gt=0, le=100)
    slo: SLO = Field(default_factory=SLO)
    # Progress, written by the controller (absent in a user's YAML).
    percent: float | None = Field(None, ge=0, le=100)
    status: Literal["running", "completed", "rolled_back"] = "running"
    last_step_at: datetime | None = None
    reason: str | None = None

    @property
    def current_percent(self) -> float:
        return self.start_percent if self.percent is None else self.percent


class ShadowPolicy(_Strict):
    candidate: str
    share: float = Field(100.0, ge=0, le=100, description="Percent of requests mirrored.")


class BlueGreenPolicy(_Strict):
    active: Literal["blue", "green"] = "blue"


class DeploymentSpec(_Strict):
    """A deployment: variants, the policy over them, and the policy's settings."""

    name: str = Field(..., pattern=_NAME)
    description: str | None = None
    default: bool = False
    variants: list[Variant] = Field(..., min_length=1)
    policy: Policy = Policy.SINGLE
    ab: ABPolicy | None = None
    canary: CanaryPolicy | None = None
    shadow: ShadowPolicy | None = None
    blue_green: BlueGreenPolicy | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSpec:
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant names: {', '.join(duplicates)}")
        weights = [v.weight for v in self.variants if v.weight is not None]
        if self.policy is Policy.AB and len(weights) != len(self.variants):
            raise ValueError("policy 'ab' needs a weight on every variant")
        if weights and abs(sum(weights) - 100.0) > 1e-6:
            raise ValueError(f"variant weights sum to {sum(weights):g}, not 100")
        _check_policy(self, names)
        return self

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise NotFoundError(
            f"deployment '{self.name}' has no variant '{name}'",
            hint=f"its variants are {', '.join(v.name for v in self.variants)}",
        )

    @property
    def primary(self) -> str:
        """The variant answering by default: the active slot, else the non-candidate, else first."""
        if self.policy is Policy.BLUE_GREEN and self.blue_green:
            return self.blue_green.active
        candidate = self.candidate
        return next((v.name for v in self.variants if v.name != candidate), self.variants[0].name)

    @property
    def candidate(self) -> str | None:
        """The variant under trial (canary, shadow), the idle slot (blue-green), or None."""
        if self.policy is Policy.CANARY and self.canary:
            return self.canary.candidate
        if self.policy is Policy.SHADOW and self.shadow:
            return self.shadow.candidate
        if self.policy is Policy.BLUE_GREEN and self.blue_green:
            return "green" if self.blue_green.active == "blue" else "blue"
        return None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _check_policy(spec: DeploymentSpec, names: list[str]) -> None:
    policy = spec.policy
    if policy is Policy.SINGLE and len(names) != 1:
        raise ValueError(f"policy 'single' takes exactly one variant, got {len(names)}")
    if policy in (Policy.CANARY, Policy.SHADOW):
        section = spec.canary if policy is Policy.CANARY else spec.shadow
        if section is None:
            raise ValueError(f"policy '{policy}' needs a '{policy}' section naming the candidate")
        if len(names) != 2:
            raise ValueError(f"policy '{policy}' takes two variants (primary and candidate)")
        if section.candidate not in names:
            raise ValueError(
                f"{policy}.candidate '{section.candidate}' is not a variant "
                f"(variants: {', '.join(names)})"
            )
    if (
        policy is Policy.CANARY
        and spec.canary
        and spec.canary.start_percent > spec.canary.max_percent
    ):
        raise ValueError("canary.start_percent is above canary.max_percent")
    if policy is Policy.BLUE_GREEN and sorted(names) != ["blue", "green"]:
        raise ValueError("policy 'blue_green' takes exactly two variants named 'blue' and 'green'")
    if policy is Policy.AB and spec.ab is None:
        spec.ab = ABPolicy()
    if policy is Policy.BLUE_GREEN and spec.blue_green is None:
        spec.blue_green = BlueGreenPolicy()


def parse_spec(document: Any, *, source: str = "spec") -> DeploymentSpec:
    """A DeploymentSpec from a parsed YAML/JSON document; ValidationError names every problem."""
    if not isinstance(document, dict):
        raise ValidationError(
            f"{source}: a deployment spec is a mapping, got {type(document).__name__}"
        )
    try:
        return DeploymentSpec.model_validate(document)
    except PydanticValidationError as exc:
        raise ValidationError(f"{source}: {_explain(exc)}", hint=_hint(exc)) from None


def load_spec(path: Path | str) -> DeploymentSpec:
    """Read and check a YAML (or JSON) spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"spec file {path} not found") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(document, source=str(path))


def check_models(spec: DeploymentSpec, registry: Any) -> dict[str, dict[str, str]]:
    """Resolve every variant's model in the registry: {variant: {model, name, version, uri}}.

    Raises NotFoundError naming the variant and the reference that does not resolve.
    """
    resolved = {}
    for variant in spec.variants:
        try:
            model = registry.resolve(variant.model)
        except MloopError as exc:
            error = NotFoundError if isinstance(exc, NotFoundError) else type(exc)
            raise error(
                f"variant '{variant.name}' of deployment '{spec.name}': model "
                f"'{variant.model}' does not resolve: {exc.message}",
                hint=exc.hint,
            ) from None
        resolved[variant.name] = {
            "model": variant.model,
            "name": model.name,
            "version": model.version,
            "uri": model.uri,
        }
    return resolved


def _explain(exc: PydanticValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _hint(exc: PydanticValidationError) -> str | None:
    if any(tuple(e["loc"]) == ("policy",) for e in exc.errors()):
        return f"policy is one of: {', '.join(p.value for p in Policy)}"
    return None
