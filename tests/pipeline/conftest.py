"""A module-scoped MLOOP_HOME and small churn files, so one training run serves many tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.data import generate_churn, write_table
from mloop.pipeline.config import TrainConfig, config_from_dict
from mloop.settings import Settings
from tests.support.env import home_env

SMALL = {
    "train": {"params": {"n_estimators": 20}},
    "evaluate": {"cv_folds": 3},
}


def small_config(**sections: dict | str) -> TrainConfig:
    """The default config with few trees and 3 folds, plus the given section overrides
    (a string is a top-level value such as `task="regression"`)."""
    raw: dict = {key: dict(value) for key, value in SMALL.items()}
    for key, value in sections.items():
        if isinstance(value, str):
            raw[key] = value
        else:
            raw.setdefault(key, {}).update(value)
    return config_from_dict(raw, source="test")


@pytest.fixture(scope="session")
def make_config():
    """`small_config` as a fixture, for test modules (conftest is not importable)."""
    return small_config


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings rooted in a fresh folder shared by one test module (MLflow sqlite + DB)."""
    with home_env(tmp_path_factory.mktemp("mloop-home")) as settings:
        yield settings


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 churn rows as CSV."""
    return write_table(generate_churn(1500, seed=7), tmp_path_factory.mktemp("data") / "c.csv")
