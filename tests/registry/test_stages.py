"""Stage names: parsed in any case, mapped to aliases, read back from aliases and tags."""

from __future__ import annotations

import pytest

from mloop.errors import ValidationError
from mloop.registry.stages import STAGE_TAG, Stage, parse_stage, stage_for_alias, stage_of


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("production", Stage.PRODUCTION),
        ("PRODUCTION", Stage.PRODUCTION),
        (" Production ", Stage.PRODUCTION),
        ("staging", Stage.STAGING),
        ("archived", Stage.ARCHIVED),
        ("None", Stage.NONE),
        ("none", Stage.NONE),
        (Stage.STAGING, Stage.STAGING),
    ],
)
def test_parse_stage_accepts_any_case(text: str, stage: Stage) -> None:
    assert parse_stage(text) is stage


@pytest.mark.parametrize("text", ["prod", "", "live", "Staging2"])
def test_parse_stage_rejects_unknown_names_listing_the_valid_ones(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_stage(text)
    assert repr(text) in info.value.message
    assert "None, Staging, Production, Archived" in info.value.message


def test_only_staging_and_production_have_aliases() -> None:
    assert Stage.STAGING.alias == "staging"
    assert Stage.PRODUCTION.alias == "production"
    assert Stage.ARCHIVED.alias is None
    assert Stage.NONE.alias is None
    assert [s for s in Stage if s.exclusive] == [Stage.STAGING, Stage.PRODUCTION]
    assert stage_for_alias("production") is Stage.PRODUCTION
    assert stage_for_alias("champion") is None


def test_stage_of_trusts_aliases_over_the_tag() -> None:
    assert stage_of(["production"], {STAGE_TAG: "Staging"}) is Stage.PRODUCTION
    assert stage_of(["staging", "production"], {}) is Stage.PRODUCTION
    assert stage_of(["staging"], {}) is Stage.STAGING
    # Tag says Production but the alias moved away: the version no longer serves.
    assert stage_of([], {STAGE_TAG: "Production"}) is Stage.NONE
    assert stage_of(["champion"], {STAGE_TAG: "Archived"}) is Stage.ARCHIVED
    assert stage_of([], {}) is Stage.NONE


def test_package_exports() -> None:
    import mloop.registry as registry

    for name in registry.__all__:
        assert getattr(registry, name) is not None
    with pytest.raises(AttributeError):
        _ = registry.Nope
