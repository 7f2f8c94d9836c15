"""The registry's guard (refuse a promotion, record every change), its version writes that are
not stage changes, semver registration, and the run lookups other layers use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.registry.guard import ALLOW_ALL, RegistryChange
from mloop.registry.records import VersionDetails
from mloop.registry.runs import log_run_artifact, run_record, training_run, version_run_id
from mloop.registry.service import Registry
from mloop.registry.stages import Stage
from mloop.settings import Settings


class RecordingGuard:
    """Refuses promotions into `refused`; keeps what it was asked and told."""

    def __init__(self, refused: Stage | None = None) -> None:
        self.refused = refused
        self.checked: list[tuple[str, str, Stage, object, str]] = []
        self.changes: list[RegistryChange] = []

    def check(
        self,
        name: str,
        version: str,
        stage: Stage,
        approval: int | str | None,
        details: Callable[[], VersionDetails],
    ) -> None:
        self.checked.append((name, version, stage, approval, details().version))
        if stage is self.refused:
            raise ConflictError(f"{stage.value} is refused here")

    def record(self, change: RegistryChange) -> None:
        self.changes.append(change)


def test_the_default_guard_allows_and_records_nothing(registry_home: Settings) -> None:
    assert Registry(registry_home).guard is ALLOW_ALL


def test_the_guard_is_asked_before_a_promotion_and_told_after(
    registry_home: Settings, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    guard = RecordingGuard(refused=Stage.PRODUCTION)
    registry = Registry(registry_home, guard=guard)
    registry.promote(name, "1", Stage.STAGING, actor="alice", approval=7)
    assert guard.checked == [(name, "1", Stage.STAGING, 7, "1")]
    [change] = guard.changes
    assert (change.actor, change.action, change.target) == ("alice", "model.promote", f"{name}/1")
    assert change.detail["stage"] == "Staging" and change.detail["approval"] == 7

    with pytest.raises(ConflictError, match="Production is refused here"):
        registry.promote(name, "2", Stage.PRODUCTION)
    assert len(guard.changes) == 1  # a refused promotion changed nothing, recorded nothing
    assert registry.get_version(f"{name}/2").stage is Stage.NONE


def test_an_unknown_version_is_404_before_the_guard_is_asked(
    registry_home: Settings, make_model: Callable[..., str]
) -> None:
    name = make_model(1)
    guard = RecordingGuard()
    with pytest.raises(NotFoundError, match="version 9"):
        Registry(registry_home, guard=guard).promote(name, "9", Stage.STAGING)
    assert guard.checked == []


def test_rollback_is_recorded(registry_home: Settings, make_model: Callable[..., str]) -> None:
    name = make_model(2)
    guard = RecordingGuard()
    registry = Registry(registry_home, guard=guard)
    registry.promote(name, "1", Stage.PRODUCTION)
    registry.promote(name, "2", Stage.PRODUCTION)
    registry.rollback(name, actor="bob")
    last = guard.changes[-1]
    assert (last.actor, last.action, last.target) == ("bob", "model.rollback", f"{name}/1")
    assert last.detail["archived"] == "2"


def test_register_tags_semver_and_records(
    registry_home: Settings, make_model: Callable[..., str], logged_runs
) -> None:
    name = make_model(0)
    guard = RecordingGuard()
    registry = Registry(registry_home, guard=guard)
    run = logged_runs[0]
    first = registry.register(run.model_uri, name, run_id=run.run_id, actor="carol")
    second = registry.register(run.model_uri, name, run_id=run.run_id, change="major")
    tags = registry.get_version(f"{name}/{second}").tags
    assert registry.get_version(f"{name}/{first}").tags["mloop.semver"] == "1.0.0"
    assert tags["mloop.semver"] == "2.0.0" and tags["mloop.change_type"] == "major"
    assert tags["mloop.stage"] == "None" and tags["mloop.run_id"] == run.run_id
    assert len(tags["mloop.content_sha256"]) == 64
    assert [(c.actor, c.action, c.target) for c in guard.changes] == [
        ("carol", "model.register", f"{name}/{first}"),
        ("local", "model.register", f"{name}/{second}"),
    ]
    assert guard.changes[1].detail["mloop.semver"] == "2.0.0"
    with pytest.raises(ValidationError, match="unknown change type 'huge'"):
        registry.register(run.model_uri, name, run_id=run.run_id, change="huge")


def test_set_alias_and_tags_leave_stages_to_promote(
    registry_home: Settings, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry = Registry(registry_home)
    registry.set_alias(name, "candidate", "2")
    registry.set_tags(name, "2", {"mloop.retrained_from": "1"})
    details = registry.get_version(f"{name}@candidate")
    assert details.version == "2" and details.tags["mloop.retrained_from"] == "1"
    assert details.stage is Stage.NONE
    with pytest.raises(ValidationError, match="alias 'production' is the Production stage"):
        registry.set_alias(name, "production", "2")
    with pytest.raises(ValidationError, match="mloop.stage tag changes through promote"):
        registry.set_tags(name, "2", {"mloop.stage": "Production"})
    with pytest.raises(NotFoundError, match="version 5"):
        registry.set_alias(name, "candidate", "5")


def test_run_lookups(
    registry_home: Settings, make_model: Callable[..., str], logged_runs, tmp_path: Path
) -> None:
    name = make_model(1)
    run = logged_runs[0]
    assert version_run_id(registry_home, name, "1") == run.run_id
    found = training_run(registry_home, name, "1")
    assert found is not None and found.run_id == run.run_id
    assert found.metrics["accuracy"] == pytest.approx(run.accuracy)
    assert found.params["C"] == "0.01" and found.tags["mloop.git_commit"] == "commit0"
    assert run_record(registry_home, "0" * 32) is None
    with pytest.raises(NotFoundError, match=f"reading version 4 of '{name}'"):
        training_run(registry_home, name, "4")

    note = tmp_path / "note.txt"
    note.write_text("hello")
    log_run_artifact(registry_home, run.run_id, note, "notes")
    assert mlflow.artifacts.load_text(f"runs:/{run.run_id}/notes/note.txt") == "hello"
