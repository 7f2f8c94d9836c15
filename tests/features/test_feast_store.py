"""Feast out of process, end to end on a real local repo (Parquet offline, SQLite online).

`feast apply`, `mloop features materialize`, a point-in-time training frame from
`historical_frame`, a model trained on it, and mloop serving that model from entity keys through
`feast serve`: /predict, /predict/batch, bulk lookups for batch scoring, and every refusal (an
unknown entity 404, a bad entity body 422, Feast down 503), never a 500.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mloop.errors import ConfigError, NotFoundError, ServiceUnavailableError, ValidationError
from mloop.features import feast_env
from mloop.features.feast_client import FeastClient, FeastSource, online_frame
from mloop.features.feast_history import historical_frame
from mloop.serving.app import create_app
from tests.support import feastkit
from tests.support.apps import in_process
from tests.support.loopkit import free_port
from tests.support.modelkit import home_settings

NAME = "feast-churn"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The example repo applied, and materialized up to 2024-02-15 by the CLI: the online
    store holds each customer's February snapshot (support_calls == 2)."""
    venv = feastkit.feast_venv()
    repo = feastkit.make_repo(tmp_path_factory.mktemp("feast"), f"mloop_t{os.getpid()}")
    feast_env.apply(venv, repo)
    from mloop.cli.main import app  # lazy: the CLI's import cost only for this module

    env = {"MLOOP_FEAST_VENV": str(venv), "MLOOP_FEAST_REPO": str(repo)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        from mloop.settings import reset_settings

        reset_settings()
        try:
            result = CliRunner().invoke(
                app,
                [
                    "features",
                    "materialize",
                    "--start",
                    "2023-12-01T00:00:00+00:00",
                    "--end",
                    "2024-02-15T00:00:00+00:00",
                ],
            )
        finally:
            reset_settings()
    assert result.exit_code == 0, result.output
    return repo


def _labels(path: Path, times: list[str], customers: list[int]) -> Path:
    frame = pd.DataFrame(
        {
            "customer_id": customers,
            "event_timestamp": pd.to_datetime(times, utc=True, format="ISO8601"),
            "churned": [i % 2 for i in range(len(customers))],
        }
    )
    frame.to_parquet(path, index=False)
    return path


def test_history_is_point_in_time_correct(repo, tmp_path):
    # customer 7 has snapshots on Jan 1, Feb 1 and Mar 1 (support_calls 1, 2, 3)
    times = ["2023-12-15", "2024-01-01", "2024-01-31T23:59:59", "2024-02-01", "2024-02-20",
             "2024-03-02"]  # fmt: skip
    entities = _labels(tmp_path / "labels.parquet", times, [7] * len(times))
    frame = historical_frame(
        {"repo": str(repo), "features": list(feastkit.FEATURES)}, entities, venv=feastkit.VENV
    )
    asked = pd.to_datetime(times, utc=True, format="ISO8601")
    assert list(frame["event_timestamp"]) == list(asked)  # every row, in order
    calls = frame["support_calls"].tolist()
    # before the first snapshot: nothing; then always the latest snapshot <= t, never a later one
    assert pd.isna(calls[0])
    assert [int(c) for c in calls[1:]] == [1, 1, 2, 2, 3]
    stats = feastkit.stats_frame()
    feb = stats[(stats.customer_id == 7) & (stats.support_calls == 2)].iloc[0]
    assert frame["tenure"].iloc[4] == pytest.approx(feb["tenure"])
    assert list(frame["churned"]) == [i % 2 for i in range(len(times))]  # labels come back


def test_history_refuses_an_entity_file_without_timestamps(repo, tmp_path):
    path = tmp_path / "keys.parquet"
    pd.DataFrame({"customer_id": [1, 2]}).to_parquet(path)
    with pytest.raises(ValidationError, match="event_timestamp"):
        historical_frame({"repo": str(repo), "features": ["customer_stats:tenure"]}, path,
                         venv=feastkit.VENV)  # fmt: skip


def test_history_without_a_feast_section_or_venv_is_a_config_error(repo, tmp_path):
    entities = _labels(tmp_path / "l.parquet", ["2024-02-02"], [1])
    with pytest.raises(ConfigError, match="no Feast source"):
        historical_frame({"target": "churned"}, entities, venv=feastkit.VENV)
    with pytest.raises(ConfigError, match="no Feast environment"):
        historical_frame({"repo": str(repo), "features": ["customer_stats:tenure"]}, entities,
                         venv=tmp_path / "none")  # fmt: skip


@pytest.fixture(scope="module")
def served(repo, tmp_path_factory):
    """A model trained on Feast's history, and Feast's feature server over the online store."""
    home = tmp_path_factory.mktemp("home")
    entities = _labels(
        home / "labels.parquet",
        ["2024-02-10"] * feastkit.CUSTOMERS,
        list(range(1, feastkit.CUSTOMERS + 1)),
    )
    train = historical_frame(
        {"repo": str(repo), "features": list(feastkit.FEATURES)}, entities, venv=feastkit.VENV
    )
    settings = home_settings(home)
    feastkit.train_on(settings, train, "churned", NAME)
    with feastkit.feature_server(feastkit.VENV, repo) as url:
        yield (
            settings.model_copy(
                update={"feast_url": url, "feast_features": list(feastkit.FEATURES)}
            ),
            url,
        )


@pytest.fixture(scope="module")
def client(served):
    settings, _ = served
    with in_process(create_app(f"{NAME}@production", settings, log_predictions=False)) as http:
        yield http


def test_predict_from_the_entity_key_alone(client, served):
    settings, _ = served
    by_entity = client.post("/predict", json={"entity": {"customer_id": 42}})
    assert by_entity.status_code == 200, by_entity.text
    stats = feastkit.stats_frame()
    row = stats[(stats.customer_id == 42) & (stats.support_calls == 2)].iloc[0]  # materialized
    features = {c: (row[c].item() if hasattr(row[c], "item") else row[c]) for c in feastkit.COLUMNS}
    by_features = client.post("/predict", json={"features": features})
    assert by_features.status_code == 200
    assert by_entity.json()["probabilities"] == by_features.json()["probabilities"]


def test_predict_batch_from_entity_keys(client):
    keys = [{"customer_id": i} for i in (3, 1, 2, 3)]
    answer = client.post("/predict/batch", json={"entities": keys})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total_count"] == 4
    one = [client.post("/predict", json={"entity": k}).json()["prediction"] for k in keys]
    assert [p["prediction"] for p in body["predictions"]] == one


def test_an_unknown_entity_is_a_404_naming_it(client):
    answer = client.post("/predict", json={"entity": {"customer_id": 987654}})
    assert answer.status_code == 404
    assert "customer_id=987654" in answer.text
    batch = client.post("/predict/batch", json={"entities": [{"customer_id": 1},
                                                             {"customer_id": 55555}]})  # fmt: skip
    assert batch.status_code == 404
    assert "customer_id=55555" in batch.text and "customer_id=1}" not in batch.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"entity": 42}, "'entity' must be an object"),
        ({"entity": {}}, "must be an object of entity keys"),
        ({"entity": {"customer_id": None}}, "entity key 'customer_id'"),
        ({"entity": {"customer_id": 1}, "features": {}}, "not both"),
        ({"entity": {"cust": 1}}, "Feast feature server refused"),  # wrong join key
        ({"entity": {"customer_id": "x"}}, "Feast feature server refused"),  # wrong key type
    ],
)
def test_bad_entity_bodies_are_422_naming_the_problem(client, body, needle):
    answer = client.post("/predict", json=body)
    assert answer.status_code == 422, answer.text
    assert needle in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"entities": []}, "non-empty array"),
        ({"entities": [{"customer_id": 1}, {"id": 2}]}, "same entity keys"),
        ({"entities": [{"customer_id": 1}, 7]}, "row 1 must be an object"),
    ],
)
def test_bad_batch_entity_bodies_are_422(client, body, needle):
    answer = client.post("/predict/batch", json=body)
    assert answer.status_code == 422, answer.text
    assert needle in answer.json()["detail"]


def test_too_many_entities_are_refused_before_asking_feast(served):
    settings, _ = served
    small = settings.model_copy(update={"max_batch_rows": 2})
    with in_process(create_app(f"{NAME}@production", small, log_predictions=False)) as http:
        answer = http.post("/predict/batch", json={"entities": [{"customer_id": i}
                                                                for i in (1, 2, 3)]})  # fmt: skip
    assert answer.status_code == 422
    assert "over the limit of 2" in answer.text


def test_feast_unreachable_is_a_503_naming_it(served):
    settings, _ = served
    down = f"http://127.0.0.1:{free_port()}"
    gone = settings.model_copy(update={"feast_url": down})
    with in_process(create_app(f"{NAME}@production", gone, log_predictions=False)) as http:
        answer = http.post("/predict", json={"entity": {"customer_id": 1}})
        features = {"tenure": 1.0, "charges": 2.0, "support_calls": 1, "plan": "pro"}
        plain = http.post("/predict", json={"features": features})
    assert answer.status_code == 503
    assert down in answer.text
    assert plain.status_code == 200  # requests that send features never need Feast


def test_bulk_online_lookup_in_chunks(served):
    _, url = served
    source = FeastSource(url, feastkit.FEATURES)
    keys = pd.DataFrame({"customer_id": [5, 1, 9, 2, 7]})
    frame = online_frame(source, keys, chunk_rows=2)  # three HTTP calls
    assert frame.columns[0] == "customer_id" and set(feastkit.COLUMNS) <= set(frame.columns)
    assert frame["customer_id"].tolist() == [5, 1, 9, 2, 7]
    assert frame["support_calls"].tolist() == [2] * 5  # the February snapshot
    with pytest.raises(NotFoundError, match="customer_id=424242"):
        online_frame(source, pd.DataFrame({"customer_id": [1, 424242]}), chunk_rows=1)
    with pytest.raises(ServiceUnavailableError):
        online_frame(FeastSource(f"http://127.0.0.1:{free_port()}", feastkit.FEATURES), keys)


def test_cli_online_writes_the_feature_rows(served, tmp_path, monkeypatch):
    from mloop.cli.main import app  # lazy: the CLI's import cost only here
    from mloop.settings import reset_settings

    _, url = served
    keys = tmp_path / "keys.csv"
    pd.DataFrame({"customer_id": [4, 8]}).to_csv(keys, index=False)
    monkeypatch.setenv("MLOOP_FEAST_URL", url)
    monkeypatch.setenv("MLOOP_FEAST_FEATURES", ",".join(feastkit.FEATURES))
    reset_settings()
    try:
        result = CliRunner().invoke(app, ["features", "online", str(keys), "-o",
                                          str(tmp_path / "rows.parquet")])  # fmt: skip
    finally:
        reset_settings()
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "rows.parquet")
    assert rows["customer_id"].tolist() == [4, 8]
    assert set(feastkit.COLUMNS) <= set(rows.columns)


def test_materialize_refuses_an_empty_window(repo):
    from datetime import UTC, datetime

    moment = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="not before"):
        feast_env.materialize(feastkit.VENV, repo, moment, moment)


def test_training_with_a_feast_contract_builds_its_frame_point_in_time(repo, tmp_path):
    """`mloop train` on a file of entity rows (customer_id, event_timestamp, label): the
    contract's Feast section makes training join each row with its features as of that time,
    and keys and timestamps do not become model inputs."""
    import mlflow
    import yaml

    from mloop.features.contract import FeatureContract
    from mloop.pipeline.config import load_config
    from mloop.pipeline.train import train

    settings = home_settings(tmp_path / "home").model_copy(update={"feast_venv": feastkit.VENV})
    entities = _labels(
        tmp_path / "labels.parquet",
        ["2024-02-10"] * feastkit.CUSTOMERS,
        list(range(1, feastkit.CUSTOMERS + 1)),
    )
    contract = yaml.safe_load((feastkit.EXAMPLE / "features.yaml").read_text())
    contract["feast"]["repo"] = str(repo)
    (tmp_path / "features.yaml").write_text(yaml.safe_dump(contract))
    (tmp_path / "params.yaml").write_text(
        "data: {target: churned}\ntrain:\n  params: {n_estimators: 10}\n"
        "evaluate:\n  cv_folds: 0\nregister:\n  name: feast-trained\n  criteria: {}\n"
    )
    result = train(entities, load_config(tmp_path / "params.yaml"), settings=settings)
    assert result.registered, result.failed_criteria
    model = mlflow.sklearn.load_model(f"runs:/{result.run_id}/model")
    assert sorted(model.feature_names_in_) == sorted(feastkit.COLUMNS)
    logged = FeatureContract.from_yaml(
        mlflow.artifacts.load_text(f"runs:/{result.run_id}/features.yaml")
    )
    assert logged.feast is not None and logged.entity_key == "customer_id"


def test_batch_predict_scores_an_entity_key_file(served, tmp_path, monkeypatch):
    from mloop.cli.main import app  # lazy: the CLI's import cost only here
    from mloop.settings import reset_settings

    settings, url = served
    keys = tmp_path / "keys.csv"
    pd.DataFrame({"customer_id": [3, 6, 424242]}).to_csv(keys, index=False)
    env = {
        "MLOOP_HOME": str(settings.home),
        "MLOOP_TRACKING_URI": settings.tracking_uri,
        "MLOOP_ARTIFACT_ROOT": str(settings.artifact_root),
        "MLOOP_DATABASE_URL": settings.database_url,
        "MLOOP_FEAST_URL": url,
        "MLOOP_FEAST_FEATURES": ",".join(feastkit.FEATURES),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "scores.parquet"
    reset_settings()
    try:
        missing = CliRunner().invoke(app, ["batch-predict", f"{NAME}@production", str(keys),
                                           str(out), "--entities"])  # fmt: skip
        pd.DataFrame({"customer_id": [3, 6]}).to_csv(keys, index=False)
        result = CliRunner().invoke(app, ["batch-predict", f"{NAME}@production", str(keys),
                                          str(out), "--entities", "--restart"])  # fmt: skip
    finally:
        reset_settings()
    assert missing.exit_code != 0 and "424242" in missing.output  # named, not a traceback
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert scores["customer_id"].tolist() == [3, 6] and scores["prediction"].notna().all()


def test_concurrent_lookups_share_calls_and_keep_their_own_answers(served):
    """64 requests at once cost Feast a few combined calls; each gets its own rows, its own 404
    for an unknown entity and its own 422 for a key Feast refuses."""
    _, url = served
    client = FeastClient(FeastSource(url, feastkit.FEATURES))
    keys = [[{"customer_id": 1 + i % feastkit.CUSTOMERS}] for i in range(62)]
    keys += [[{"customer_id": 987654}], [{"customer_id": "x"}]]

    async def lookups():
        return await asyncio.gather(*(client.online(k) for k in keys), return_exceptions=True)

    answers = asyncio.run(lookups())
    for key, rows in zip(keys[:62], answers[:62], strict=True):
        assert not isinstance(rows, Exception), rows
        assert rows[0]["customer_id"] == key[0]["customer_id"] and rows[0]["support_calls"] == 2
    assert isinstance(answers[62], NotFoundError) and "customer_id=987654" in str(answers[62])
    assert isinstance(answers[63], ValidationError) and "refused" in str(answers[63])
    assert client.calls < 30  # 64 lookups combined; the refused call split in halves
