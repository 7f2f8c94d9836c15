"""The deployment spec: every example parses; every malformed spec is refused by name."""

from __future__ import annotations

import pytest

from mloop.deploy.spec import Policy, load_spec, parse_spec
from mloop.errors import NotFoundError, ValidationError
from tests.support.deploykit import EXAMPLES


def ab(**changes):
    spec = {
        "name": "churn-ab",
        "policy": "ab",
        "variants": [
            {"name": "control", "model": "churn@production", "weight": 90},
            {"name": "challenger", "model": "churn/2", "weight": 10},
        ],
    }
    spec.update(changes)
    return spec


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_parses(path):
    spec = load_spec(path)
    assert spec.policy in set(Policy)
    assert spec.name.startswith("churn")


def test_one_example_per_policy():
    assert {load_spec(p).policy for p in EXAMPLES.glob("*.yaml")} == set(Policy)


def test_defaults_and_roles():
    spec = parse_spec(ab())
    assert spec.ab is not None and spec.ab.sticky_key == "user_id"
    assert spec.primary == "control" and spec.candidate is None
    canary = load_spec(EXAMPLES / "canary.yaml")
    assert canary.candidate == "canary" and canary.primary == "stable"
    assert canary.canary.current_percent == 5
    bg = load_spec(EXAMPLES / "blue_green.yaml")
    assert bg.primary == "blue" and bg.candidate == "green"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policy": "rainbow"}, "policy: Input should be 'single', 'ab'"),
        (
            {
                "variants": [
                    {"name": "a", "model": "churn/1", "weight": 60},
                    {"name": "b", "model": "churn/2", "weight": 30},
                ]
            },
            "variant weights sum to 90, not 100",
        ),
        (
            {
                "variants": [
                    {"name": "a", "model": "churn/1", "weight": 50},
                    {"name": "a", "model": "churn/2", "weight": 50},
                ]
            },
            "duplicate variant names: a",
        ),
        (
            {"variants": [{"name": "a", "model": "churn/1"}, {"name": "b", "model": "churn/2"}]},
            "policy 'ab' needs a weight on every variant",
        ),
        ({"variants": []}, "variants: List should have at least 1 item"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"name": "no spaces"}, "name: String should match pattern"),
        (
            {"policy": "canary", "canary": {"candidate": "nobody"}},
            "canary.candidate 'nobody' is not a variant (variants: control, challenger)",
        ),
        ({"policy": "canary"}, "policy 'canary' needs a 'canary' section"),
        ({"policy": "shadow", "shadow": {"candidate": "ghost"}}, "shadow.candidate 'ghost'"),
        ({"policy": "single"}, "policy 'single' takes exactly one variant, got 2"),
        ({"policy": "blue_green"}, "two variants named 'blue' and 'green'"),
        (
            {
                "policy": "canary",
                "canary": {"candidate": "challenger", "start_percent": 50, "max_percent": 20},
            },
            "start_percent is above canary.max_percent",
        ),
    ],
)
def test_malformed_specs_are_refused_by_name(changes, message):
    with pytest.raises(ValidationError) as caught:
        parse_spec(ab(**changes))
    assert message in caught.value.message


def test_unknown_policy_hint_lists_the_policies():
    with pytest.raises(ValidationError) as caught:
        parse_spec(ab(policy="rainbow"))
    assert caught.value.hint == "policy is one of: single, ab, canary, shadow, blue_green"


def test_files_that_are_not_specs(tmp_path):
    with pytest.raises(NotFoundError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValidationError, match="is a mapping, got list"):
        load_spec(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


def test_unknown_variant_lookup_names_the_variants():
    with pytest.raises(NotFoundError, match="has no variant 'x'") as caught:
        parse_spec(ab()).variant("x")
    assert caught.value.hint == "its variants are control, challenger"
