"""A regressor trained with `task: regression` serves numbers: `/predict` answers a float
prediction and no probability, `/predict/batch` one number per row, and the prediction log
and drift profile take the numeric output."""

from __future__ import annotations

import math

from mloop.data import generate_churn, write_table
from mloop.pipeline.config import config_from_dict
from mloop.pipeline.train import train
from mloop.serving.app import create_app
from mloop.testing import check_api_payloads
from tests.support.apps import in_process
from tests.support.modelkit import json_rows


def test_regression_model_answers_numbers(mloop_home, tmp_path):
    frame = generate_churn(500, seed=4).drop(columns=["churn"]).dropna(subset=["total_charges"])
    data = write_table(frame, tmp_path / "spend.csv")
    config = config_from_dict(
        {
            "task": "regression",
            "data": {"target": "total_charges"},
            "train": {"model": "gradient_boosting", "params": {"n_estimators": 30}},
            "evaluate": {"cv_folds": 0},
            "register": {"name": "spend", "criteria": {"r2": 0.3}},
        }
    )
    result = train(data, config, settings=mloop_home)
    assert result.registered and result.task == "regression"
    rows = json_rows(frame.drop(columns=["total_charges", "customer_id"]).head(3))
    with in_process(create_app("spend/1", mloop_home)) as http:
        one = http.post("/predict", json={"features": rows[0]})
        assert one.status_code == 200, one.text
        body = one.json()
        assert isinstance(body["prediction"], float) and math.isfinite(body["prediction"])
        assert body.get("probability") is None and body.get("probabilities") is None
        batch = http.post("/predict/batch", json={"instances": rows})
        assert batch.status_code == 200, batch.text
        answers = batch.json()["predictions"]
        assert [type(a["prediction"]) for a in answers] == [float] * 3
        assert answers[0]["prediction"] == body["prediction"]
        info = http.get("/model/info")
        assert info.status_code == 200 and info.json()["classes"] is None
        check_api_payloads(http)  # the plugin's check, rows from /model/info
