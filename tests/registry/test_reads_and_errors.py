"""Listing, showing and resolving versions, and the errors for everything that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from mloop.errors import NotFoundError, ServiceUnavailableError, ValidationError
from mloop.registry.refs import ModelRef
from mloop.registry.service import Registry
from mloop.registry.stages import Stage
from mloop.settings import Settings


@pytest.fixture(scope="module")
def registry(registry_home: Settings) -> Registry:
    return Registry(registry_home)


def test_get_version_shows_run_results_lineage_and_stage(
    registry: Registry, logged_runs, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    registry.promote(name, "2", Stage.STAGING, reason="candidate")
    details = registry.get_version(f"{name}/2")
    assert (details.name, details.version, details.stage) == (name, "2", Stage.STAGING)
    assert details.aliases == ["staging"]
    assert details.uri == f"models:/{name}/2"
    assert details.source == logged_runs[1].model_uri
    assert details.run_id == logged_runs[1].run_id
    assert details.status == "READY"
    assert details.metrics["accuracy"] == pytest.approx(logged_runs[1].accuracy)
    assert details.params == {"C": "0.1", "max_iter": "200"}
    assert details.lineage == {
        "mloop.git_commit": "commit1",
        "mloop.data_sha256": "ab" * 32,
        "mloop.data_path": "data/iris.csv",
    }
    assert details.tags["mloop.stage"] == "Staging"
    assert details.created_at is not None and details.created_at.tzinfo is not None
    assert [(t.to_stage, t.reason) for t in details.history] == [(Stage.STAGING, "candidate")]
    as_json = details.to_dict()
    assert as_json["stage"] == "Staging"
    assert as_json["history"][0]["to_stage"] == "Staging"
    assert isinstance(as_json["created_at"], str)


@pytest.mark.parametrize(
    "form",
    [
        "{name}/1",
        "{name}@production",
        "{name}@Production",
        "models:/{name}/1",
        "models:/{name}@production",
    ],
)
def test_every_reference_form_resolves(
    registry: Registry, make_model: Callable[..., str], form: str
) -> None:
    name = make_model(2)
    registry.promote(name, "1", Stage.PRODUCTION)
    assert registry.get_version(form.format(name=name)).version == "1"
    assert registry.resolve(form.format(name=name)).uri == f"models:/{name}/1"


def test_a_bare_name_means_the_latest_version(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(3)
    assert registry.get_version(name).version == "3"
    assert registry.get_version(f"models:/{name}/latest").version == "3"
    assert registry.resolve(ModelRef(name, version="2")).version == "2"


def test_a_version_without_a_run_shows_empty_results(
    registry: Registry, make_model: Callable[..., str], logged_runs
) -> None:
    name = make_model(0)
    client = mlflow.MlflowClient()
    model_id = logged_runs[0].model_uri.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    client.create_model_version(name, source=location)
    details = registry.get_version(f"{name}/1")
    assert (details.run_id, details.metrics, details.params, details.lineage) == (None, {}, {}, {})


def test_list_models_summarizes_versions_and_stage_holders(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(3)
    registry.promote(name, "2", Stage.PRODUCTION)
    registry.promote(name, "3", Stage.STAGING)
    summaries = {summary.name: summary for summary in registry.list_models()}
    summary = summaries[name]
    assert (summary.latest_version, summary.version_count) == ("3", 3)
    assert (summary.staging_version, summary.production_version) == ("3", "2")
    assert summary.description == f"test model {name}"
    assert summary.last_updated is not None
    assert summaries["iris"].version_count == 3
    names = [s.name for s in registry.list_models()]
    assert names == sorted(names)


def test_unknown_model_is_not_found_with_the_known_models_in_the_hint(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    make_model(1)
    for call in (
        lambda: registry.get_version("ghost/1"),
        lambda: registry.get_version("ghost"),
        lambda: registry.get_version("ghost@production"),
        lambda: registry.promote("ghost", "1", Stage.PRODUCTION),
        lambda: registry.history("ghost"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert info.value.message == "registered model 'ghost' not found"
        assert "iris" in info.value.hint and "mloop models list" in info.value.hint


def test_unknown_model_in_an_empty_registry_suggests_training(mloop_home: Settings) -> None:
    with pytest.raises(NotFoundError) as info:
        Registry(mloop_home).get_version("ghost/1")
    assert "no models are registered yet" in info.value.hint
    assert Registry(mloop_home).list_models() == []


def test_unknown_version_names_the_versions_that_exist(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    with pytest.raises(NotFoundError) as info:
        registry.get_version(f"{name}/7")
    assert info.value.message == f"version 7 of model '{name}' not found: its versions are 1, 2"
    with pytest.raises(NotFoundError, match="its versions are 1, 2"):
        registry.promote(name, 9, "Staging")


def test_a_model_without_versions(registry: Registry, make_model: Callable[..., str]) -> None:
    name = make_model(0)
    with pytest.raises(NotFoundError, match=f"registered model '{name}' has no versions"):
        registry.get_version(name)
    with pytest.raises(NotFoundError, match="it has no versions"):
        registry.get_version(f"{name}/1")


def test_unknown_alias_names_the_aliases_that_exist(
    registry: Registry, make_model: Callable[..., str]
) -> None:
    name = make_model(2)
    with pytest.raises(NotFoundError) as info:
        registry.resolve(f"{name}@production")
    assert (
        info.value.message == f"alias 'production' of model '{name}' not found: it has no aliases"
    )
    registry.promote(name, "2", Stage.STAGING)
    with pytest.raises(NotFoundError) as info:
        registry.get_version(f"{name}@champion")
    assert info.value.message == (
        f"alias 'champion' of model '{name}' not found: its aliases are staging (version 2)"
    )


@pytest.mark.parametrize("version", ["abc", "0", "-1", "1.5", ""])
def test_bad_version_numbers_are_validation_errors(registry: Registry, version: str) -> None:
    with pytest.raises(ValidationError, match="version must be a positive whole number"):
        registry.promote("iris", version, Stage.STAGING)


def test_bad_stage_and_bad_reference_are_validation_errors(registry: Registry) -> None:
    with pytest.raises(ValidationError, match="unknown stage 'prod'"):
        registry.promote("iris", "1", "prod")
    with pytest.raises(ValidationError, match="invalid model reference 'iris@@x'"):
        registry.get_version("iris@@x")


def test_an_unusable_tracking_store_is_service_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings(home=tmp_path / "home", tracking_uri=f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(ServiceUnavailableError) as info:
        Registry(settings).list_models()
    assert "the model registry at sqlite:///" in info.value.message
    assert "MLOOP_TRACKING_URI" in info.value.hint
