"""`load_profile` configures MLflow itself: drift.md's snippet works in a plain script."""

from __future__ import annotations

import subprocess
import sys

from mloop.data import generate_churn
from mloop.data.io import write_table
from mloop.pipeline.config import config_from_dict
from mloop.pipeline.train import train
from mloop.registry.profile_store import load_profile
from tests.support.env import clean_environ, reset_mlflow

CONFIG = {"train": {"params": {"n_estimators": 5}}, "evaluate": {"cv_folds": 0}}


def test_load_profile_needs_no_configure_mlflow_first(mloop_home, tmp_path):
    data = write_table(generate_churn(300, seed=5), tmp_path / "churn.csv")
    result = train(data, config_from_dict(CONFIG, source="test"), settings=mloop_home)
    reset_mlflow()  # as in a fresh process: no tracking URI set

    profile = load_profile(result.run_id)
    assert profile is not None and "age" in profile.features

    reset_mlflow()
    assert load_profile(result.run_id, mloop_home) is not None

    script = (
        "from mloop.registry.profile_store import load_profile\n"
        f"profile = load_profile({result.run_id!r})\n"
        "print(sorted(profile.features)[:2])\n"
    )
    env = clean_environ(MLOOP_HOME=str(mloop_home.home))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "'age'" in done.stdout
