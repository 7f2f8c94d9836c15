"""Promotion moves aliases and archives the previous holder; rollback walks back the history."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
import pytest
from sqlalchemy import select

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.registry.service import Registry
from mloop.registry.stages import STAGE_TAG, Stage
from mloop.settings import Settings
from mloop.store import StageTransition, open_database


@pytest.fixture(scope="module")
def registry(registry_home: Settings) -> Registry:
    return Registry(registry_home)


def _alias_holders(name: str) -> dict[str, str]:
    model = mlflow.MlflowClient().get_registered_model(name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _stage_tag(name: str, version: str) -> str | None:
    return mlflow.MlflowClient().get_model_version(name, version).tags.get(STAGE_TAG)


def test_promote_moves_the_alias_and_archives_the_previous_holder(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    first = registry.promote(name, "1", Stage.PRODUCTION, reason="first release")
    assert (first.version, first.from_stage, first.to_stage) == ("1", Stage.NONE, Stage.PRODUCTION)
    assert first.replaced_version is None and first.archived_version is None
    assert first.reason == "first release" and first.actor == "local"
    assert _alias_holders(name) == {"production": "1"}
    assert _stage_tag(name, "1") == "Production"

    second = registry.promote(name, 2, "production", actor="alice")
    assert second.replaced_version == "1" and second.archived_version == "1"
    assert second.actor == "alice"
    assert _alias_holders(name) == {"production": "2"}
    assert _stage_tag(name, "2") == "Production"
    assert _stage_tag(name, "1") == "Archived"
    assert registry.get_version(f"{name}/1").stage is Stage.ARCHIVED
    assert registry.get_version(f"{name}@production").version == "2"


def test_staging_to_production_drops_the_staging_alias(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.STAGING)
    registry.promote(name, "2", Stage.PRODUCTION)
    assert _alias_holders(name) == {"staging": "1", "production": "2"}
    moved = registry.promote(name, "1", Stage.PRODUCTION)
    assert moved.from_stage is Stage.STAGING
    assert moved.archived_version == "2"
    assert _alias_holders(name) == {"production": "1"}
    summary = next(s for s in registry.list_models() if s.name == name)
    assert (summary.staging_version, summary.production_version) == (None, "1")


def test_archiving_and_none_remove_stage_aliases(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "2", Stage.STAGING)
    archived = registry.promote(name, "1", "archived")
    assert archived.archived_version is None and archived.replaced_version is None
    cleared = registry.promote(name, "2", "None")
    assert cleared.from_stage is Stage.STAGING
    assert _alias_holders(name) == {}
    assert _stage_tag(name, "1") == "Archived"
    assert _stage_tag(name, "2") == "None"
    assert registry.get_version(f"{name}/2").stage is Stage.NONE


def test_promoting_to_the_stage_already_held_is_a_conflict(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(1)
    with pytest.raises(ConflictError, match=f"version 1 of '{name}' is already in None"):
        registry.promote(name, "1", Stage.NONE)
    registry.promote(name, "1", Stage.STAGING)
    with pytest.raises(ConflictError, match="already in Staging"):
        registry.promote(name, "1", "STAGING")
    assert len(registry.history(name)) == 1


def test_loading_the_production_alias_gives_the_promoted_version(
    registry: Registry, make_model: Callable[..., str], logged_runs
) -> None:
    name = make_model(3)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "3", Stage.PRODUCTION)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@production")
    assert loaded.metadata.run_id == logged_runs[2].run_id
    resolved = registry.resolve(f"{name}@Production")
    assert (resolved.name, resolved.version, resolved.uri) == (name, "3", f"models:/{name}/3")


def test_rollback_goes_back_and_repeated_rollback_walks_further_back(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(3)
    for version in ("1", "2", "3"):
        registry.promote(name, version, Stage.PRODUCTION)

    back = registry.rollback(name)
    assert (back.version, back.archived_version, back.replaced_version) == ("2", "3", "1")
    assert back.from_stage is Stage.ARCHIVED and back.to_stage is Stage.PRODUCTION
    assert back.reason == "rollback from version 3"
    assert _alias_holders(name) == {"production": "2"}
    assert _stage_tag(name, "3") == "Archived"

    further = registry.rollback(name, actor="bob")
    assert (further.version, further.archived_version, further.replaced_version) == (
        "1",
        "2",
        None,
    )
    assert _alias_holders(name) == {"production": "1"}

    with pytest.raises(ConflictError, match="nothing to roll back to: version 1 .* first"):
        registry.rollback(name)
    assert _alias_holders(name) == {"production": "1"}


def test_rollback_after_promoting_again_returns_to_the_last_holder(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(3)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "2", Stage.PRODUCTION)
    registry.rollback(name)  # 1 again
    registry.promote(name, "3", Stage.PRODUCTION)  # replaces 1
    assert registry.rollback(name).version == "1"
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        registry.rollback(name)


def test_rollback_of_staging(registry: Registry, make_model: Callable[..., str]) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.STAGING)
    registry.promote(name, "2", Stage.STAGING)
    assert registry.rollback(name, stage="staging").version == "1"
    assert _alias_holders(name) == {"staging": "1"}


def test_rollback_with_nothing_in_the_stage_is_a_conflict(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(1)
    with pytest.raises(ConflictError, match=f"no version of '{name}' is in Production"):
        registry.rollback(name)


def test_rollback_of_an_alias_set_outside_mloop_is_a_conflict(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(3)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "2", Stage.PRODUCTION)
    mlflow.MlflowClient().set_registered_model_alias(name, "production", "3")
    with pytest.raises(ConflictError, match="set outside mloop") as info:
        registry.rollback(name)
    assert "version 3" in info.value.message
    assert "mloop models promote" in info.value.hint
    # Moved back by hand to a version mloop once promoted, but not the latest promotion: same.
    mlflow.MlflowClient().set_registered_model_alias(name, "production", "1")
    with pytest.raises(ConflictError, match="set outside mloop"):
        registry.rollback(name)


def test_rollback_to_a_deleted_version_is_a_conflict(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "2", Stage.PRODUCTION)
    mlflow.MlflowClient().delete_model_version(name, "1")
    with pytest.raises(ConflictError, match="version 1: that version was deleted"):
        registry.rollback(name)


def test_rollback_of_archived_or_none_is_a_validation_error(registry: Registry) -> None:
    with pytest.raises(ValidationError, match="cannot roll back Archived"):
        registry.rollback("anything", stage=Stage.ARCHIVED)
    with pytest.raises(ValidationError, match="unknown stage 'live'"):
        registry.rollback("anything", stage="live")


def test_rollback_of_an_unknown_model_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="registered model 'ghost' not found"):
        registry.rollback("ghost")


def test_history_rows_are_written_to_the_platform_database(
    registry: Registry, registry_home: Settings, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.PRODUCTION, actor="alice", reason="go live")
    registry.promote(name, "2", Stage.PRODUCTION, actor="bob")
    registry.rollback(name, actor="carol")

    with open_database(registry_home).session() as session:
        rows = session.scalars(
            select(StageTransition)
            .where(StageTransition.model_name == name)
            .order_by(StageTransition.id)
        ).all()
        got = [
            (r.version, r.from_stage, r.to_stage, r.replaced_version, r.actor, r.reason)
            for r in rows
        ]
    assert got == [
        ("1", "None", "Production", None, "alice", "go live"),
        ("2", "None", "Production", "1", "bob", None),
        ("1", "Production", "Archived", None, "bob", "replaced by version 2 in Production"),
        ("1", "Archived", "Production", None, "carol", "rollback from version 2"),
        (
            "2",
            "Production",
            "Archived",
            None,
            "carol",
            "rolled back: version 1 restored to Production",
        ),
    ]
    history = registry.history(name)
    assert [(t.version, t.to_stage) for t in history] == [(g[0], Stage(g[2])) for g in got]
    assert all(t.created_at.tzinfo is not None for t in history)
    assert [t.version for t in registry.get_version(f"{name}/2").history] == ["2", "2"]


def test_concurrent_promotions_leave_one_holder_and_a_consistent_history(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = make_model(4)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda v: registry.promote(name, v, Stage.PRODUCTION), ["1", "2", "3", "4"])
        )
    promotions = [t for t in registry.history(name) if t.to_stage is Stage.PRODUCTION]
    # Serialized writers: each promotion replaced exactly the one recorded before it.
    assert [t.replaced_version for t in promotions] == [None] + [t.version for t in promotions[:-1]]
    assert sorted(t.version for t in results) == ["1", "2", "3", "4"]
    assert _alias_holders(name) == {"production": promotions[-1].version}
    archived = [v for v in "1234" if registry.get_version(f"{name}/{v}").stage is Stage.ARCHIVED]
    assert sorted(archived) == sorted(t.version for t in promotions[:-1])
