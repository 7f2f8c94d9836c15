"""The training config (params.yaml): typed sections, strict keys, errors that name file and key.

Sections and defaults follow the seed's params.yaml, extended with the model choice, feature
lists and registration criteria:

    data:       {target: churn, id_columns: [customer_id]}
    preprocess: {test_split: 0.2, random_state: 42}
    features:   {numeric: [...], categorical: [...], date: [...]}   # optional; inferred
    train:      {model: random_forest, params: {...}}
    evaluate:   {threshold: 0.5, cv_folds: 5}
    register:   {name: churn, criteria: {accuracy: 0.70, roc_auc: 0.75}}
    contract:   features.yaml    # optional; a features.yaml beside the config is used too
    task:       classification   # or regression; absent: detected from the target column
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mloop.errors import ConfigError, NotFoundError
from mloop.pipeline.evaluate import KNOWN_METRICS
from mloop.pipeline.models import MODELS, allowed_params, default_params


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSection(_Section):
    """Which column is the label and which are identifiers (never features)."""

    target: str = "churn"
    id_columns: list[str] = Field(default_factory=lambda: ["customer_id"])
    drop: list[str] = Field(default_factory=list, description="Other columns to ignore.")
    path: str | None = Field(
        None,
        description="The training table `mloop train` reads without --data (relative to "
        "this file); a project's params.yaml names it (`mloop init`).",
    )


class PreprocessSection(_Section):
    """How the data is split into train and held-out test rows."""

    test_split: float = Field(0.2, gt=0.0, lt=1.0)
    random_state: int = 42


class FeaturesSection(_Section):
    """Feature columns by kind. When all three are absent they are inferred from the data."""

    numeric: list[str] | None = None
    categorical: list[str] | None = None
    date: list[str] | None = None

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.numeric, self.categorical, self.date))


class TrainSection(_Section):
    """The estimator and its parameters (merged over the model's defaults)."""

    model: str = "random_forest"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_model(self) -> TrainSection:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; supported: {', '.join(MODELS)}")
        unknown = sorted(set(self.params) - allowed_params(self.model))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {self.model}: {', '.join(unknown)}")
        merged = {**default_params(self.model), **self.params}
        if merged != self.params:
            object.__setattr__(self, "params", merged)
        return self


class EvaluateSection(_Section):
    """Decision threshold on the positive-class probability, and cross-validation folds."""

    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    cv_folds: int = Field(5, ge=0, le=50, description="0 disables cross-validation.")

    @field_validator("cv_folds")
    @classmethod
    def _not_one(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cv_folds must be 0 (disabled) or at least 2")
        return value


class RegisterSection(_Section):
    """Registered model name and the metric thresholds a model must meet to be registered."""

    name: str = Field("churn", min_length=1)
    criteria: dict[str, float] = Field(default_factory=lambda: {"accuracy": 0.70, "roc_auc": 0.75})

    @field_validator("criteria")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(KNOWN_METRICS))
        if unknown:
            raise ValueError(
                f"unknown criterion metric(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_METRICS))}"
            )
        return value


REGRESSION_CRITERIA = {"r2": 0.5}
_SCALARS = frozenset({"contract", "task"})  # top-level keys that are values, not sections

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class TrainConfig(_Section):
        """The whole training config; every section has defaults.

        Defined under a narrow warnings filter: the `register` section shares its name with
        ABCMeta.register on the class, which pydantic warns about; instances are unaffected.
        """

        data: DataSection = Field(default_factory=DataSection)
        preprocess: PreprocessSection = Field(default_factory=PreprocessSection)
        features: FeaturesSection = Field(default_factory=FeaturesSection)
        train: TrainSection = Field(default_factory=TrainSection)
        evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
        register: RegisterSection = Field(default_factory=RegisterSection)
        contract: str | None = Field(
            None, description="features.yaml to validate against (relative to this file)."
        )
        task: Literal["classification", "regression"] | None = Field(
            None, description="The learning task; absent: detected from the target column."
        )

        @model_validator(mode="before")
        @classmethod
        def _empty_sections(cls, data: Any) -> Any:
            """`features:` with nothing under it means the section's defaults."""
            if isinstance(data, dict):
                return {k: ({} if v is None and k not in _SCALARS else v) for k, v in data.items()}
            return data

        @model_validator(mode="after")
        def _regression_criteria(self) -> TrainConfig:
            """`task: regression` without criteria gates on R² (the defaults are classifiers')."""
            if self.task == "regression" and "criteria" not in self.register.model_fields_set:
                object.__setattr__(self.register, "criteria", dict(REGRESSION_CRITERIA))
            return self

        def to_yaml(self) -> str:
            """The effective config as YAML (what was actually used, defaults filled in)."""
            return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(path: str | Path | None = None) -> TrainConfig:
    """Load a params.yaml, or the embedded defaults when `path` is None."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    config = config_from_dict(raw or {}, source=str(path))
    # The feature contract: `contract:` (relative to the config), else features.yaml beside it.
    if config.contract is not None:
        config.contract = str((path.parent / config.contract).resolve())
    elif (path.parent / "features.yaml").is_file():
        config.contract = str((path.parent / "features.yaml").resolve())
    return config


def config_from_dict(raw: Any, source: str = "config") -> TrainConfig:
    """Validate a parsed config mapping; errors name `source` and the dotted key."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}",
            hint=f"sections: {', '.join(TrainConfig.model_fields)}",
        )
    try:
        return TrainConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, source), hint=_hint(exc)) from None


def _describe(exc: pydantic.ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            kind = "section" if len(err["loc"]) == 1 else "key"
            problems.append(f"{source}: unknown {kind} {loc!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}: {loc or '(top level)'}: {msg}")
    return "; ".join(problems)


def _hint(exc: pydantic.ValidationError) -> str | None:
    for err in exc.errors():
        if err["type"] == "extra_forbidden":
            section = err["loc"][0] if len(err["loc"]) > 1 else None
            model = TrainConfig.model_fields[section].annotation if section else TrainConfig
            fields = getattr(model, "model_fields", {})
            where = f"section {section!r}" if section else "the config"
            return f"keys allowed in {where}: {', '.join(fields)}"
    return None
