"""Config-driven training: load, split, fit, evaluate, cross-validate, log, gate, register.

One MLflow run per call. The logged model is the whole sklearn Pipeline (feature steps and
estimator), so it takes raw rows; it is registered only when every criterion passes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from mloop.data.io import read_table
from mloop.errors import ConfigError
from mloop.features.contract import CONTRACT_ARTIFACT, FeatureContract, derived_from_spec
from mloop.features.feast_history import TIMESTAMP, historical_frame
from mloop.features.report_html import render_html
from mloop.features.spec import build_preprocessor
from mloop.features.validation import ValidationReport, check_overlap, validate_frame
from mloop.pipeline import dataset as ds_mod
from mloop.pipeline import dvc_lineage, wandb_mirror
from mloop.pipeline import plots as plots_mod
from mloop.pipeline.config import TrainConfig
from mloop.pipeline.evaluate import (
    CriterionResult,
    check_criteria,
    classification_metrics,
    cross_validate,
    metrics_for_task,
    regression_metrics,
)
from mloop.pipeline.lineage import lineage_tags, package_versions
from mloop.pipeline.models import CLASSIFICATION, REGRESSION, make_estimator
from mloop.registry.profile_store import log_profile
from mloop.registry.semver import check_change
from mloop.registry.service import Registry
from mloop.registry.tracking import ensure_experiment
from mloop.settings import Settings, get_settings
from mloop.stats.profile import training_profile

STEPS = (
    "load",
    "validate",
    "split",
    "fit",
    "evaluate",
    "cross-validate",
    "log",
    "gate",
    "register",
)
EXAMPLE_ROWS = 3
_MAX_PARAM = 6000
_MAX_TAG = 8000


@dataclass
class TrainResult:
    """What a training run produced, and whether it was registered."""

    run_id: str
    experiment_id: str
    model_name: str
    version: str | None
    model_uri: str
    metrics: dict[str, float]
    criteria: list[CriterionResult] = field(default_factory=list)
    registered: bool = False
    task: str = ""

    @property
    def failed_criteria(self) -> list[CriterionResult]:
        return [c for c in self.criteria if not c.passed]

    @property
    def ref(self) -> str | None:
        """`churn/3` when registered."""
        return f"{self.model_name}/{self.version}" if self.version else None


def train(
    data: Path,
    config: TrainConfig | None = None,
    *,
    name: str | None = None,
    settings: Settings | None = None,
    on_step: Callable[[str], None] | None = None,
    change: str = "minor",
    actor: str = "local",
    registry: Registry | None = None,
) -> TrainResult:
    """Train the configured model on a CSV/Parquet file, log it to MLflow, gate and register.

    `change` (major, minor, patch) sets the registered version's semantic version bump;
    `actor` is who the registration is recorded for by `registry`'s guard (the audit trail
    when it is governance's, see `mloop.governance.governed.governed_registry`). Without a
    `registry`, one on `settings` that records nothing.
    """
    config = config or TrainConfig()
    settings = settings or (registry.settings if registry is not None else get_settings())
    step = on_step or (lambda _name: None)
    model_name = name or config.register.name
    data = Path(data)
    change = check_change(change)  # a bad change type fails before training, not after

    step("load")
    declared = _declared_contract(config)
    df = _training_table(data, declared, settings)

    step("validate")
    contract, report, df = _validate(df, declared, config, data, settings)
    ds = ds_mod.prepare(df, config, source=str(data))
    if contract is None:  # no features.yaml: the model still carries one, inferred, counting
        contract, report = _inferred_contract(df, ds, data)
    contract = contract.with_derived(derived_from_spec(ds.spec))
    family = REGRESSION if ds.task == ds_mod.REGRESSION else CLASSIFICATION
    estimator = make_estimator(config.train.model, family, config.train.params)
    check_criteria(dict.fromkeys(metrics_for_task(ds.task), 0.0), config.register.criteria)

    step("split")
    X_train, X_test, y_train, y_test = ds_mod.split(
        ds, config.preprocess.test_split, config.preprocess.random_state
    )
    report.add(check_overlap(X_train, X_test), "train_test_overlap")

    step("fit")
    pipeline = Pipeline([("features", build_preprocessor(ds.spec)), ("model", estimator)])
    pipeline.fit(X_train, y_train)

    step("evaluate")
    if ds.task == ds_mod.REGRESSION:
        metrics = regression_metrics(y_test, pipeline.predict(X_test))
    else:
        metrics = classification_metrics(
            y_test, pipeline.predict_proba(X_test), pipeline.classes_, config.evaluate.threshold
        )

    step("cross-validate")
    if config.evaluate.cv_folds:
        metrics.update(
            cross_validate(
                pipeline,
                X_train,
                y_train,
                folds=config.evaluate.cv_folds,
                task=ds.task,
                random_state=config.preprocess.random_state,
            )
        )

    step("log")
    experiment_id = ensure_experiment(settings.experiment, settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        mlflow.log_params(_params(config, ds, len(X_train), len(X_test)))
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tags(_tags(config, ds, data, len(df)))
        mlflow.log_text(config.to_yaml(), "config/params.yaml")
        _log_contract(contract, report, declared is not None)
        importance = feature_importance(pipeline)
        if importance is not None:
            mlflow.log_dict(importance, "feature_importance.json")
        model_info = _log_model(pipeline, X_train)
        log_profile(training_profile(pipeline, X_train, X_test, ds.spec, contract))
        with tempfile.TemporaryDirectory(prefix="mloop-plots-") as folder:
            pngs = _log_plots(pipeline, X_test, y_test, ds.task, config, Path(folder))
            wandb_mirror.mirror_run(
                settings,
                run_id=run_id,
                model_name=model_name,
                params=_params(config, ds, len(X_train), len(X_test)),
                metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
                plots=pngs,
                tags={"task": ds.task, "model": config.train.model},
            )

        step("gate")
        criteria = check_criteria(metrics, config.register.criteria)
        mlflow.log_dict([c.to_dict() for c in criteria], "criteria.json")
        passed = all(c.passed for c in criteria)
        mlflow.set_tag("mloop.criteria_passed", str(passed).lower())

        step("register")
        version = None
        model_uri = model_info.model_uri
        if passed:
            version = (registry or Registry(settings)).register(
                model_info.model_uri, model_name, run_id=run_id, change=change, actor=actor
            )
            model_uri = f"models:/{model_name}/{version}"
            mlflow.set_tag("mloop.registered_version", f"{model_name}/{version}")

    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=model_name,
        version=version,
        model_uri=model_uri,
        metrics=metrics,
        criteria=criteria,
        registered=version is not None,
        task=ds.task,
    )


def _log_plots(
    pipeline: Pipeline,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    task: str,
    config: TrainConfig,
    folder: Path,
) -> list[Path]:
    """Draw the task's evaluation plots on the test split and log them under `plots/`."""
    seed = config.preprocess.random_state
    if task == ds_mod.REGRESSION:
        plots = plots_mod.regression_plots(pipeline, X_test, y_test, random_state=seed)
    else:
        plots = plots_mod.classification_plots(
            pipeline, X_test, y_test, threshold=config.evaluate.threshold, random_state=seed
        )
    pngs = plots_mod.write_plots(plots, folder)
    mlflow.log_artifacts(str(folder), plots_mod.ARTIFACT_DIR)
    mlflow.set_tag("mloop.plots", ",".join(p.name for p in plots))
    return pngs


def _training_table(data: Path, contract: FeatureContract | None, settings: Settings):
    """The raw training table: the file itself or, when the contract names a Feast source,
    the file's entity rows (keys, `event_timestamp`, label) joined point-in-time with their
    Feast features (`features.feast_history`); the keys and timestamps are not features."""
    if contract is None or not contract.feast:
        return read_table(data)
    frame = historical_frame(contract, data, venv=settings.feast_venv)
    declared = {rule.name for rule in contract.features}
    keys = [TIMESTAMP, contract.entity_key]
    return frame.drop(columns=[c for c in keys if c and c in frame.columns and c not in declared])


def _declared_contract(config: TrainConfig) -> FeatureContract | None:
    """The config's features.yaml (`contract:`, or one beside the config), or None."""
    if config.contract is None:
        return None
    contract = FeatureContract.load(config.contract)
    if contract.target is not None and contract.target != config.data.target:
        raise ConfigError(
            f"the contract {config.contract} names target {contract.target!r}, "
            f"the config data.target {config.data.target!r}",
            hint="make them agree (or leave target out of features.yaml)",
        )
    return contract


def _validate(
    df: pd.DataFrame,
    contract: FeatureContract | None,
    config: TrainConfig,
    data: Path,
    settings: Settings,
) -> tuple[FeatureContract | None, ValidationReport | None, pd.DataFrame]:
    """Validate the raw table against the declared contract; errors stop training here.

    The failing report is written under `MLOOP_HOME/validation/` and named in the error.
    Columns declared `used_in: training` are checked, then kept out of the model's inputs.
    """
    if contract is None:
        return None, None, df
    report = validate_frame(
        df,
        contract,
        target=config.data.target,
        source=str(data),
        ignore=[*config.data.id_columns, *config.data.drop],
    )
    if not report.ok:
        stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
        report.write(settings.ensure_home() / "validation", f"{data.stem}-{stamp}")
        report.raise_for_errors()
    training_only = [r.name for r in contract.features if r.used_in == "training"]
    return contract, report, df.drop(columns=[c for c in training_only if c in df.columns])


def _inferred_contract(
    df: pd.DataFrame, ds: ds_mod.Dataset, data: Path
) -> tuple[FeatureContract, ValidationReport]:
    """A contract inferred from the training table, policy `count` (values outside are
    counted at serving, not refused), and the data checks on it, all as warnings."""
    frame = df.loc[:, [*ds.spec.input_columns, ds.spec.target]]
    contract = FeatureContract.infer(frame, target=ds.spec.target, policy="count")
    return contract, validate_frame(frame, contract, source=str(data)).as_warnings()


def _log_contract(contract: FeatureContract, report: ValidationReport, declared: bool) -> None:
    """The contract as `features.yaml` beside the model, the validation report, its tags."""
    mlflow.log_text(contract.to_yaml(), CONTRACT_ARTIFACT)
    mlflow.log_text(report.to_json(), "validation/report.json")
    mlflow.log_text(render_html(report), "validation/report.html")
    warnings = report.warnings
    mlflow.set_tags(
        {
            "mloop.contract": "declared" if declared else "inferred",
            "mloop.validation": "warnings" if warnings else "passed",
            "mloop.validation.warnings": str(len(warnings)),
            "mloop.validation.warning_checks": _clip(
                ",".join(sorted({w.check for w in warnings})), _MAX_TAG
            ),
        }
    )


def feature_importance(pipeline: Pipeline) -> dict[str, float] | None:
    """Importance per transformed feature, largest first, when the estimator exposes it."""
    values = getattr(pipeline.named_steps["model"], "feature_importances_", None)
    if values is None:
        return None
    names = pipeline.named_steps["features"].get_feature_names_out()
    pairs = sorted(zip(names, values, strict=True), key=lambda p: -p[1])
    return {str(k): float(v) for k, v in pairs}


def _params(config: TrainConfig, ds: ds_mod.Dataset, n_train: int, n_test: int) -> dict:
    params: dict[str, object] = {k: v for k, v in config.train.params.items()}
    params.update(
        {
            "model_type": config.train.model,
            "split.test_split": config.preprocess.test_split,
            "split.random_state": config.preprocess.random_state,
            "split.train_rows": n_train,
            "split.test_rows": n_test,
            "evaluate.threshold": config.evaluate.threshold,
            "evaluate.cv_folds": config.evaluate.cv_folds,
            "features.numeric": ",".join(ds.spec.numeric),
            "features.categorical": ",".join(ds.spec.categorical),
            "features.date": ",".join(ds.spec.date),
        }
    )
    return {k: _clip(str(v), _MAX_PARAM) for k, v in params.items()}


def _tags(config: TrainConfig, ds: ds_mod.Dataset, data: Path, rows: int) -> dict[str, str]:
    tags = lineage_tags(data, rows)
    tags.update(dvc_lineage.record(data.parent))  # the dvc.lock above the data, if any
    tags.update(
        {
            "mloop.model_type": config.train.model,
            "mloop.task": ds.task,
            "mloop.target": ds.spec.target,
            "mloop.feature_spec": ds.spec.to_json(),
            "mloop.config": config.to_yaml(),
        }
    )
    return {k: _clip(v, _MAX_TAG) for k, v in tags.items()}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_model(pipeline: Pipeline, X_train: pd.DataFrame):
    """Log the pipeline with a signature of the raw input columns and a few raw example rows."""
    # The whole training split, so every column that has a missing value there is optional.
    signature = infer_signature(X_train, pipeline.predict(X_train.head(EXAMPLE_ROWS)))
    example = X_train.head(EXAMPLE_ROWS)
    with _quiet_pickle_caution():
        return mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=_requirements(),
        )


class _DropPickleCaution(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "cloudpickle format requires exercising caution" not in record.getMessage()


@contextmanager
def _quiet_pickle_caution() -> Iterator[None]:
    """Hide MLflow's pickle caution: cloudpickle is chosen on purpose (skops refuses our steps)."""
    logger = logging.getLogger("mlflow.sklearn")
    flt = _DropPickleCaution()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


def _requirements() -> list[str]:
    """Pinned requirements of the logged model, declared so MLflow need not infer them.

    Inference imports the model in a subprocess (seconds per run); the pipeline's needs are
    known: scikit-learn and cloudpickle, pandas and numpy, and mloop for the feature steps.
    """
    versions = package_versions()
    pins = list(mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True))
    pins += [f"{name}=={versions[name]}" for name in ("pandas", "numpy", "mloop")]
    return pins


def result_summary(result: TrainResult) -> dict[str, object]:
    """A JSON-ready summary of a result (for `--json` output and job records)."""
    return json.loads(
        json.dumps(
            {
                "run_id": result.run_id,
                "experiment_id": result.experiment_id,
                "model_name": result.model_name,
                "version": result.version,
                "model_uri": result.model_uri,
                "registered": result.registered,
                "task": result.task,
                "metrics": result.metrics,
                "criteria": [c.to_dict() for c in result.criteria],
            }
        )
    )
