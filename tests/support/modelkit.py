"""A small registered model for serving tests: the shape `mloop train` logs (raw-column
signature with NaN floats, an int, a categorical string and an ISO date string)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.settings import Settings
from tests.support.stores import seed_mlflow

NAME = "churn"
COLUMNS = ["tenure", "charges", "support_calls", "plan", "signup_date"]
# Given to log_model: MLflow's requirement inference is a subprocess that costs seconds.
PIP_REQUIREMENTS = ["scikit-learn", "pandas", "cloudpickle"]


def make_frame(rows: int = 240, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.uniform(0, 72, rows),
            "charges": rng.uniform(10, 120, rows),
            "support_calls": rng.integers(0, 8, rows).astype(np.int64),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "signup_date": pd.date_range("2023-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        }
    )
    frame.loc[frame.index % 11 == 0, "tenure"] = np.nan
    frame.loc[frame.index % 13 == 0, "charges"] = np.nan
    y = ((frame["support_calls"] > 3) | (frame["plan"] == "basic")).astype(int).to_numpy()
    flip = rng.random(rows) < 0.2  # noise, so probabilities are not all 0 or 1
    y = np.where(flip, 1 - y, y)
    return frame, y


def make_pipeline(strict: bool = False):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    features = ColumnTransformer(
        [
            ("num", numeric, ["tenure", "charges", "support_calls"]),
            ("cat", OneHotEncoder(handle_unknown="error" if strict else "ignore"), ["plan"]),
        ]
    )
    return Pipeline(
        [("features", features), ("model", RandomForestClassifier(n_estimators=10, random_state=0))]
    )


@dataclass
class TrainedModel:
    settings: Settings
    name: str
    version: str
    pipeline: object
    frame: pd.DataFrame


def train_and_register(
    settings: Settings, name: str = NAME, alias: str = "production", *, strict: bool = False
) -> TrainedModel:
    """Fit, log (cloudpickle, signature on raw columns), register, and point `alias` at it."""
    import mlflow
    from mlflow.models import infer_signature

    configure_mlflow(settings)
    experiment_id = ensure_experiment("serving-tests", settings)
    frame, y = make_frame()
    pipeline = make_pipeline(strict).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(frame, pipeline.predict(frame))
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                input_example=frame.head(3),
                serialization_format="cloudpickle",
                registered_model_name=name,
                pip_requirements=PIP_REQUIREMENTS,
            )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return TrainedModel(settings, name, version, pipeline, frame)


def home_settings(path: Path) -> Settings:
    """Settings rooted at `path` without touching the environment (module-scoped fixtures)."""
    settings = Settings(
        home=path,
        tracking_uri=f"sqlite:///{path / 'mlflow.db'}",
        artifact_root=str(path / "artifacts"),
        database_url=f"sqlite:///{path / 'mloop.db'}",
        fallback_model_uris=[],
    )
    settings.ensure_home()
    return seed_mlflow(settings)


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client would send them: NaN becomes null, numpy scalars become Python."""
    return [{k: _plain(v) for k, v in record.items()} for record in frame.to_dict("records")]


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0
