"""A text column the model reads as a date (`DateParts`) refuses text that is not a date."""

from __future__ import annotations

import warnings

import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from mloop.errors import ValidationError
from mloop.features.transformers import DateParts
from mloop.model.loader import load_model
from mloop.model.table import check_chunk
from mloop.registry.tracking import configure_mlflow
from tests.support import modelkit


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("date-features"))
    configure_mlflow(settings)
    frame, y = modelkit.make_frame()
    frame = frame[["tenure", "signup_date"]]
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", SimpleImputer(), ["tenure"]),
                        (
                            "date",
                            Pipeline([("parts", DateParts()), ("fill", SimpleImputer())]),
                            ["signup_date"],
                        ),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=5, random_state=0)),
        ]
    ).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(frame, pipeline.predict(frame)),
                serialization_format="cloudpickle",
                pip_requirements=modelkit.PIP_REQUIREMENTS,
            )
    return load_model(info.model_uri, name="dated", version="1")


def test_the_date_column_is_known_from_the_model(model):
    feature = dict(zip(model.schema.names, model.schema.features, strict=True))["signup_date"]
    assert feature.type == "string" and feature.date
    assert feature.to_dict()["format"] == "date"


def test_text_that_is_not_a_date_is_refused_naming_the_feature(model):
    with pytest.raises(ValidationError, match="row 1: feature 'signup_date' expects an ISO 8601"):
        model.schema.to_frame(
            [
                {"tenure": 3.0, "signup_date": "2024-02-01"},
                {"tenure": 3.0, "signup_date": "not-a-date"},
            ]
        )
    frame = model.schema.to_frame([{"tenure": 3.0, "signup_date": "2024-02-01T10:00:00"}])
    assert frame["signup_date"].tolist() == ["2024-02-01T10:00:00"]  # the model gets the text


def test_a_batch_rejects_the_row_that_is_not_a_date(model):
    checked = check_chunk(
        model.schema,
        pd.DataFrame({"tenure": [1.0, 2.0], "signup_date": ["2024-01-05", "not-a-date"]}),
    )
    assert checked.good.tolist() == [True, False]
    assert "signup_date" in checked.reasons[1] and "ISO 8601" in checked.reasons[1]
