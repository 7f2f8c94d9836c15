"""The W&B mirror in W&B's offline mode (files written under WANDB_DIR, nothing sent), and
that a failing mirror only warns: training still logs and registers."""

from __future__ import annotations

import logging

import pytest

from mloop.pipeline import wandb_mirror
from mloop.pipeline.train import train
from tests.support import wandbkit

wandb = pytest.importorskip("wandb", reason="the mloop[wandb] extra is not installed")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "config"),
        "WANDB_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    return tmp_path


def test_run_is_mirrored_offline_with_params_metrics_and_plots(
    module_home, churn_csv, make_config, offline
):
    settings = module_home.model_copy(update={"wandb_project": "mloop-tests"})
    result = train(churn_csv, make_config(evaluate={"cv_folds": 0}), settings=settings)
    assert result.registered
    config, metrics, keys = wandbkit.offline_run(offline)
    assert config["mlflow_run_id"] == result.run_id
    assert config["model_type"] == "random_forest" and config["n_estimators"] == "20"
    for name in ("accuracy", "roc_auc", "f1"):
        assert metrics[name] == pytest.approx(result.metrics[name])
    logged_images = {k.split("/")[1] for k in keys if k.startswith("plots/")}
    assert {"roc", "confusion_matrix", "feature_importance"} <= logged_images
    images = list((offline / "wandb").glob("offline-run-*/files/media/images/plots/*.png"))
    assert any(p.name.startswith("roc") for p in images)


def test_a_failing_mirror_warns_and_training_goes_on(
    module_home, churn_csv, make_config, offline, monkeypatch, caplog
):
    def broken(**_kwargs):
        raise RuntimeError("wandb is down")

    monkeypatch.setattr(wandb, "init", broken)
    settings = module_home.model_copy(update={"wandb_project": "mloop-tests"})
    with caplog.at_level(logging.WARNING, logger=wandb_mirror.__name__):
        result = train(churn_csv, make_config(evaluate={"cv_folds": 0}), settings=settings)
    assert result.registered
    assert "W&B mirror of run" in caplog.text and "wandb is down" in caplog.text
    assert not (offline / "wandb").exists()


def test_no_project_means_no_mirror(module_home, offline, monkeypatch):
    monkeypatch.setattr(wandb, "init", lambda **_: pytest.fail("wandb.init called"))
    mirrored = wandb_mirror.mirror_run(
        module_home, run_id="r", model_name="m", params={}, metrics={}, plots=[]
    )
    assert mirrored is False
