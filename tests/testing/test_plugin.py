"""The `mloop.testing` pytest plugin on a small trained project: its fixtures and checks pass
on a good model and fail with clear messages on broken expectations, in a pytester run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mloop.pipeline.config import load_config
from mloop.pipeline.train import train
from mloop.settings import Settings
from mloop.testing import check_directional, check_examples_predict, example_rows
from tests.support.env import reset_mlflow

pytest_plugins = ["pytester"]

CONTRACT = {
    "target": "y",
    "features": {
        "x": {"type": "number", "min": 0, "max": 100},
        "color": {"type": "category", "allowed": ["red", "blue"]},
    },
    "examples": [
        {"x": 5.0, "color": "red"},
        {"x": 20.0, "color": "blue"},
        {"x": 80.0, "color": "red"},
        {"x": 95.0, "color": "blue"},
    ],
    "tests": {
        "invariance": [{"feature": "color", "values": ["red", "blue"]}],
        "directional": [{"feature": "x", "increase": True, "expect": "up"}],
    },
}
PARAMS = {
    "data": {"target": "y", "id_columns": []},
    "train": {"model": "random_forest", "params": {"n_estimators": 20, "max_depth": 4}},
    "evaluate": {"cv_folds": 0},
    "register": {"name": "proj", "criteria": {"accuracy": 0.7}},
}


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, rows)
    y = (x + rng.normal(0, 15, rows) > 50).astype(int)
    return pd.DataFrame({"x": x, "color": rng.choice(["red", "blue"], rows), "y": y})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with params.yaml, features.yaml, data and a registered model."""
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (root / "features.yaml").write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    _frame(600, 1).to_csv(root / "train.csv", index=False)
    _frame(200, 2).to_csv(root / "holdout.csv", index=False)
    settings = Settings(home=root / ".mloop")
    settings.ensure_home()
    result = train(root / "train.csv", load_config(root / "params.yaml"), settings=settings)
    assert result.registered, result.criteria
    yield root
    reset_mlflow()


def _run(pytester: pytest.Pytester, project: Path, monkeypatch, body: str):
    monkeypatch.delenv("MLOOP_HOME", raising=False)
    pytester.makepyfile(test_project=textwrap.dedent(body))
    return pytester.runpytest_inprocess("--mloop-project", str(project), "-p", "no:cacheprovider")


def test_fixtures_and_checks_pass_on_a_good_model(pytester, project, monkeypatch):
    result = _run(
        pytester,
        project,
        monkeypatch,
        """
        from mloop.testing import (
            check_api_payloads, check_directional, check_examples_predict,
            check_invariance, check_min_metrics,
        )

        def test_fixtures(mloop_project, mloop_settings, mloop_contract, mloop_model):
            assert (mloop_project / "params.yaml").is_file()
            assert mloop_settings.home == mloop_project / ".mloop"
            assert mloop_contract.target == "y" and mloop_model.ref == "proj/1"

        def test_model(mloop_model, mloop_contract, mloop_project):
            check_examples_predict(mloop_model, mloop_contract)
            check_invariance(mloop_model, mloop_contract)
            check_directional(mloop_model, mloop_contract)
            check_min_metrics(mloop_model, mloop_project / "holdout.csv", {"roc_auc": 0.7})

        def test_api(mloop_client, mloop_contract):
            check_api_payloads(mloop_client, mloop_contract)
        """,
    )
    result.assert_outcomes(passed=3)


def test_broken_expectations_fail_with_clear_messages(pytester, project, monkeypatch):
    result = _run(
        pytester,
        project,
        monkeypatch,
        """
        from mloop.testing import check_directional, check_invariance, check_min_metrics

        def test_invariance(mloop_model, mloop_contract):
            contract = mloop_contract.from_dict({
                **mloop_contract.to_dict(),
                "tests": {"invariance": [{"feature": "x", "values": [1, 99]}]},
            })
            check_invariance(mloop_model, contract)

        def test_directional(mloop_model, mloop_contract):
            contract = mloop_contract.from_dict({
                **mloop_contract.to_dict(),
                "tests": {"directional": [{"feature": "x", "expect": "down"}]},
            })
            check_directional(mloop_model, contract)

        def test_min_metrics(mloop_model, mloop_project):
            check_min_metrics(mloop_model, mloop_project / "holdout.csv", {"roc_auc": 1.01})
        """,
    )
    result.assert_outcomes(failed=3)
    output = result.stdout.str()
    assert "invariance broken: changing 'x' among [1, 99] changed the prediction" in output
    assert "moving 'x' from 0.0 to 100.0 should move the score down" in output
    assert "below the minimum: roc_auc" in output and "< 1.01" in output


def test_checks_work_without_pytest_on_any_predict_object():
    from mloop.features.contract import FeatureContract

    contract = FeatureContract.from_dict({k: v for k, v in CONTRACT.items() if k != "examples"})
    rows = example_rows(contract)
    assert [r["x"] for r in rows] == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert {r["color"] for r in rows} == {"red", "blue"}

    class Threshold:
        classes = [0, 1]

        def predict(self, rows):
            return [int(r["x"] > 50) for r in rows]

    assert check_examples_predict(Threshold(), contract) == [0, 0, 0, 1, 1]
    check_directional(Threshold(), contract)

    class Backwards(Threshold):
        def predict(self, rows):
            return [int(r["x"] < 50) for r in rows]

    with pytest.raises(AssertionError, match="should move the score up"):
        check_directional(Backwards(), contract)
