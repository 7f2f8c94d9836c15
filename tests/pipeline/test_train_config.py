"""params.yaml loading: defaults, merging, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import ConfigError, NotFoundError
from mloop.pipeline.config import TrainConfig, config_from_dict, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "params.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_and_example_file_agree():
    default = load_config(None)
    assert default == TrainConfig()
    assert default.data.target == "churn" and default.data.id_columns == ["customer_id"]
    assert default.preprocess.test_split == 0.2 and default.preprocess.random_state == 42
    assert default.train.model == "random_forest"
    assert default.train.params == {
        "n_estimators": 100,
        "max_depth": 10,
        "min_samples_split": 5,
        "random_state": 42,
    }
    assert default.evaluate.threshold == 0.5 and default.evaluate.cv_folds == 5
    assert default.register.name == "churn"
    assert default.register.criteria == {"accuracy": 0.70, "roc_auc": 0.75}
    assert not default.features.configured
    assert load_config(EXAMPLE) == default


def test_partial_file_merges_params_over_model_defaults(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "train:\n  model: gradient_boosting\n  params: {n_estimators: 7}\nfeatures:\n",
        )
    )
    assert cfg.train.params["n_estimators"] == 7
    assert cfg.train.params["learning_rate"] == 0.1
    assert cfg.register.name == "churn"
    assert "model: gradient_boosting" in cfg.to_yaml()
    assert config_from_dict(__import__("yaml").safe_load(cfg.to_yaml())) == cfg


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == TrainConfig()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("trian: {}\n", "unknown section 'trian'"),
        ("train:\n  modle: x\n", "unknown key 'train.modle'"),
        ("train: {model: xgboost}\n", "train: unknown model 'xgboost'"),
        ("train: {params: {n_trees: 3}}\n", "unknown parameter(s) for random_forest: n_trees"),
        ("register: {criteria: {auc: 0.8}}\n", "unknown criterion metric(s) auc"),
        ("preprocess: {test_split: 1.5}\n", "preprocess.test_split"),
        ("evaluate: {cv_folds: 1}\n", "cv_folds must be 0 (disabled) or at least 2"),
        ("evaluate: {threshold: high}\n", "evaluate.threshold"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in info.value.message
    assert fragment in info.value.message


def test_unknown_key_hint_lists_allowed_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "evaluate: {folds: 3}\n"))
    assert "threshold" in info.value.hint and "cv_folds" in info.value.hint


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "train:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(NotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_bad_model_parameter_value_is_caught_when_building(tmp_path):
    from mloop.pipeline.models import CLASSIFICATION, make_estimator

    with pytest.raises(ConfigError, match="n_estimators"):
        make_estimator("random_forest", CLASSIFICATION, {"n_estimators": -3})
    with pytest.raises(ConfigError, match="unknown model"):
        make_estimator("nope", CLASSIFICATION, {})
