"""The model of this project, checked with mloop's pytest plugin (fixtures `mloop_model`,
`mloop_contract`, `mloop_project`): examples predict, the behaviour declared under `tests:` in
features.yaml holds, and the held-out metrics reach their minimums."""

import pytest

from mloop.testing import (
    check_directional,
    check_examples_predict,
    check_invariance,
    check_min_metrics,
)

MIN_METRICS = {'r2': 0.5}


def test_examples_predict(mloop_model, mloop_contract):
    check_examples_predict(mloop_model, mloop_contract)


def test_invariance(mloop_model, mloop_contract):
    check_invariance(mloop_model, mloop_contract)


def test_directional(mloop_model, mloop_contract):
    check_directional(mloop_model, mloop_contract)


def test_min_metrics(mloop_model, mloop_project):
    holdout = mloop_project / "data" / "holdout.csv"
    if not holdout.is_file():
        pytest.skip("no data/holdout.csv: add a held-out file to check the metrics on")
    check_min_metrics(mloop_model, holdout, MIN_METRICS)
