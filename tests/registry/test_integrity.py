"""Model integrity: the content digest recorded at registration is checked on every load; a
version whose files changed is refused (naming both digests) and audited, at the server (the
previous version keeps serving) and in batch scoring. Untagged (older) versions load, warned."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest

from mloop.errors import ModelIntegrityError
from mloop.governance.audit import audit_log
from mloop.governance.integrity import ACTION
from mloop.jobs.batch import batch_predict
from mloop.model.digest import artifact_digest
from mloop.registry.resolve import load_model
from mloop.registry.semver import CONTENT_TAG
from mloop.registry.service import Registry
from mloop.registry.tracking import configure_mlflow, ensure_experiment
from mloop.serving.app import create_app
from mloop.settings import Settings
from tests.support import modelkit
from tests.support.apps import in_process

NAME = "churn"


def log_and_register(settings: Settings, seed: int) -> str:
    """Log a churn model and register it the way `mloop train` does (Registry.register)."""
    from mlflow.models import infer_signature

    configure_mlflow(settings)
    experiment_id = ensure_experiment("integrity-tests", settings)
    frame, y = modelkit.make_frame(seed=seed)
    pipeline = modelkit.make_pipeline().fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(frame, pipeline.predict(frame)),
                input_example=frame.head(3),
                serialization_format="cloudpickle",
                pip_requirements=modelkit.PIP_REQUIREMENTS,
            )
    return Registry(settings).register(info.model_uri, NAME, run_id=run.info.run_id)


def client(settings: Settings) -> mlflow.MlflowClient:
    uri = settings.tracking_uri
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_folder(settings: Settings, version: str) -> Path:
    uri = client(settings).get_model_version_download_uri(NAME, version)
    return Path(unquote(urlparse(uri).path))


def tamper(settings: Settings, version: str) -> None:
    """Change one byte-level detail of a file MLflow loads without complaint."""
    with open(artifact_folder(settings, version) / "requirements.txt", "a") as handle:
        handle.write("# edited after registration\n")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """churn v1 (production, intact), v2 (files changed after registration), v3 (no digest)."""
    settings = modelkit.home_settings(tmp_path_factory.mktemp("integrity-home"))
    assert log_and_register(settings, seed=7) == "1"
    assert log_and_register(settings, seed=8) == "2"
    assert log_and_register(settings, seed=9) == "3"
    assert log_and_register(settings, seed=10) == "4"
    tamper(settings, "2")
    client(settings).delete_model_version_tag(NAME, "3", CONTENT_TAG)  # as before the tag
    client(settings).set_registered_model_alias(NAME, "production", "1")
    return settings


def refusals(settings: Settings) -> list[dict]:
    return list(audit_log(settings).rows(action=ACTION))


def test_the_digest_covers_every_file_but_mlmodel_in_a_stable_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"one")
    (tmp_path / "sub" / "b.txt").write_text("two")
    (tmp_path / "MLmodel").write_text("run_id: 1")
    first = artifact_digest(tmp_path)
    (tmp_path / "MLmodel").write_text("run_id: 2")  # MLflow rewrites it on every log
    assert artifact_digest(tmp_path) == first
    (tmp_path / "sub" / "b.txt").write_text("two!")
    assert artifact_digest(tmp_path) != first
    (tmp_path / "sub" / "b.txt").write_text("two")
    (tmp_path / "sub" / "b.txt").rename(tmp_path / "sub" / "c.txt")  # a path is content too
    assert artifact_digest(tmp_path) != first


def test_registration_records_the_digest_of_the_files(home):
    tags = client(home).get_model_version(NAME, "1").tags
    assert tags[CONTENT_TAG] == artifact_digest(artifact_folder(home, "1"))


def test_an_intact_version_loads(home):
    assert load_model(f"{NAME}/1", home).version == "1"


def test_a_changed_version_is_refused_naming_both_digests(home):
    told: list[ModelIntegrityError] = []
    with pytest.raises(ModelIntegrityError) as info:
        load_model(f"{NAME}/2", home, on_refused=told.append)
    expected = client(home).get_model_version(NAME, "2").tags[CONTENT_TAG]
    found = artifact_digest(artifact_folder(home, "2"))
    assert expected != found
    assert f"sha256 {found}" in info.value.message
    assert f"recorded {expected}" in info.value.message
    assert (info.value.http_status, info.value.exit_code) == (409, 10)
    assert [(e.name, e.version, e.expected, e.found) for e in told] == [
        (NAME, "2", expected, found)
    ]


def test_a_version_registered_before_digests_loads_with_a_warning(home, caplog):
    with caplog.at_level(logging.WARNING, logger="mloop.registry"):
        assert load_model(f"{NAME}/3", home).version == "3"
    assert f"has no {CONTENT_TAG} tag" in caplog.text


def test_a_version_tagged_by_the_earlier_digest_still_loads(home, tmp_path):
    """Before issue 14 the tag hashed a download, MLflow's `registered_model_meta` included."""
    source = client(home).get_model_version(NAME, "4").source
    copy = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path))
    assert (Path(copy) / "registered_model_meta").exists()
    legacy = artifact_digest(copy, volatile=frozenset({"MLmodel"}))
    client(home).set_model_version_tag(NAME, "4", CONTENT_TAG, legacy)
    assert load_model(f"{NAME}/4", home).version == "4"


def test_the_server_keeps_the_previous_version_and_audits_the_refusal(home):
    client(home).set_registered_model_alias(NAME, "production", "1")
    app = create_app(f"{NAME}@production", home, log_predictions=False)
    row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
    try:
        with in_process(app) as http:
            assert http.post("/predict", json={"features": row}).json()["model_version"] == "1"
            client(home).set_registered_model_alias(NAME, "production", "2")
            outcome = http.post("/models/refresh").json()["refreshed"][0]
            assert outcome["state"] == "failed"
            assert "was changed after registration" in outcome["error"]
            answer = http.post("/predict", json={"features": row})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == "1"
            swap = http.get("/ready").json()
            assert "was changed after registration" in str(swap)
    finally:
        client(home).set_registered_model_alias(NAME, "production", "1")
    rows = [r for r in refusals(home) if r["actor"] == "mloop-server"]
    assert [r["target"] for r in rows] == [f"{NAME}/2"]
    detail = rows[0]["detail"]
    assert detail["expected_sha256"] == client(home).get_model_version(NAME, "2").tags[CONTENT_TAG]
    assert detail["found_sha256"] == artifact_digest(artifact_folder(home, "2"))


def test_a_server_with_only_the_changed_version_is_not_ready(home):
    app = create_app(f"{NAME}/2", home, log_predictions=False)
    with in_process(app) as http:
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert "was changed after registration" in ready.text
        row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
        assert http.post("/predict", json={"features": row}).status_code == 503


def test_batch_scoring_refuses_the_changed_version_and_audits_it(home, tmp_path):
    source = tmp_path / "in.csv"
    modelkit.make_frame(rows=20)[0].to_csv(source, index=False)
    with pytest.raises(ModelIntegrityError, match="was changed after registration"):
        batch_predict(f"{NAME}/2", source, tmp_path / "out.parquet", settings=home)
    assert not (tmp_path / "out.parquet").exists()
    assert [r["target"] for r in refusals(home) if r["actor"] == "batch"] == [f"{NAME}/2"]
    summary = batch_predict(f"{NAME}/1", source, tmp_path / "ok.parquet", settings=home)
    assert summary.rows == 20


def test_batch_predict_cli_exits_10_naming_both_digests(home, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mloop.cli.main import app
    from tests.support.env import home_env

    source = tmp_path / "in.csv"
    modelkit.make_frame(rows=5)[0].to_csv(source, index=False)
    with home_env(home.home, monkeypatch):
        result = CliRunner().invoke(
            app, ["batch-predict", f"{NAME}/2", str(source), str(tmp_path / "out.parquet")]
        )
    assert result.exit_code == 10, result.output
    flat = "".join(result.output.split())
    assert "error:modelchurnversion2waschangedafterregistration" in flat
    found = artifact_digest(artifact_folder(home, "2"))
    assert f"sha256{found}" in flat
    assert "Traceback" not in result.output


def baked_folder(settings: Settings, version: str, dest: Path) -> Path:
    """The folder `mloop build-image` bakes into an image for `churn/VERSION`."""
    from mloop.packaging.context import prepare_context

    context = prepare_context(f"{NAME}/{version}", settings, dest, server_image="mloop:test")
    return context.path / "model"


def test_a_baked_folder_serves_as_its_registered_version_without_the_registry(home, tmp_path):
    folder = baked_folder(home, "1", tmp_path / "ctx")
    elsewhere = modelkit.home_settings(tmp_path / "empty-home")  # no such model in this registry
    loaded = load_model(str(folder), elsewhere)
    assert (loaded.name, loaded.version) == (NAME, "1")


def test_a_baked_folder_changed_after_the_build_is_refused(home, tmp_path):
    folder = baked_folder(home, "1", tmp_path / "ctx")
    recorded = client(home).get_model_version(NAME, "1").tags[CONTENT_TAG]
    with open(folder / "requirements.txt", "a") as handle:
        handle.write("# edited inside the image\n")
    told: list[ModelIntegrityError] = []
    with pytest.raises(ModelIntegrityError) as info:
        load_model(str(folder), home, on_refused=told.append)
    assert f"recorded {recorded}" in info.value.message and told == [info.value]
