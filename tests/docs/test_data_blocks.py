"""The YAML and JSON the docs show are what the code reads and writes: training defaults,
a deployment spec, a drift result."""

from __future__ import annotations

import json

import yaml

from mloop.data import generate_churn
from mloop.deploy.spec import parse_spec
from mloop.pipeline.config import config_from_dict, load_config
from mloop.stats.samples import detect_drift
from tests.docs.markdown import ROOT, all_blocks
from tests.docs.output import keys_of, mismatch

YAML = [b for b in all_blocks() if b.lang == "yaml"]


def _block(page: str, first: str):
    (block,) = [b for b in YAML if b.name.startswith(page) and b.text.startswith(first)]
    return yaml.safe_load(block.text)


def test_readme_training_config_is_the_built_in_default():
    shown = config_from_dict(_block("README.md", "data:"), source="README")
    assert shown == load_config(None)
    assert shown == load_config(ROOT / "examples" / "params.yaml")


def test_deployments_spec_is_a_valid_spec_and_the_shipped_example():
    shown = _block("docs/deployments.md", "name: churn-ab")
    spec = parse_spec(shown)
    assert spec.name == "churn-ab" and [v.name for v in spec.variants] == ["control", "challenger"]
    shipped = yaml.safe_load((ROOT / "examples/deployments/ab.yaml").read_text())
    assert parse_spec(shipped).model_copy(update={"description": None}) == spec


def test_every_yaml_block_parses():
    for block in YAML:
        assert yaml.safe_load(block.text) is not None, block.name


def test_drift_json_shows_the_keys_of_a_drift_result():
    (block,) = [b for b in all_blocks() if b.lang == "json" and '"dataset_drift"' in b.text]
    reference = generate_churn(400, seed=1).drop(columns=["customer_id", "churn"])
    current = generate_churn(300, seed=2, drift=True).drop(columns=["customer_id", "churn"])
    result = detect_drift(reference, current).to_dict()
    assert mismatch(block.text, json.dumps(result)) is None
    assert {"histogram", "statistics", "missing_rate"} <= keys_of(result)
