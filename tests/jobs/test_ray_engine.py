"""`--engine ray`: the same scoring on a local Ray instance (one init for the module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr

from mloop.errors import ValidationError
from mloop.jobs.ray import ray_batch_predict, settings_from_payload, settings_payload
from mloop.settings import Settings
from tests.support import modelkit

ray = pytest.importorskip("ray")

pytestmark = [
    pytest.mark.slow,
    # Ray Data reads its own deprecated settings when it copies its context: not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # 2 actors (one CPU each) plus a CPU for the readers
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def table():
    frame, _ = modelkit.make_frame(600, seed=5)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    return frame


def test_ray_scores_parquet_like_the_model(jobs_model, table, tmp_path):
    source = tmp_path / "in.parquet"
    table.to_parquet(source)
    summary = ray_batch_predict(
        "churn@production",
        source,
        tmp_path / "out.parquet",
        settings=jobs_model.settings,
        chunk_rows=200,
        concurrency=2,
    )
    assert summary.engine == "ray" and (summary.rows, summary.scored) == (600, 600)
    result = pd.read_parquet(tmp_path / "out.parquet").sort_values("customer_id")
    assert list(result.columns) == ["customer_id", "prediction", "probability", "model_version"]
    expected = jobs_model.pipeline.predict_proba(table[list(modelkit.COLUMNS)])
    assert result["prediction"].tolist() == expected.argmax(axis=1).tolist()
    assert np.allclose(result["probability"], expected.max(axis=1))


def test_ray_sends_bad_csv_rows_to_rejects(jobs_model, table, tmp_path):
    dirty = table.copy().astype({"support_calls": object})
    dirty.loc[7, "support_calls"] = "lots"
    dirty.loc[300, "plan"] = None
    source = tmp_path / "in.csv"
    dirty.to_csv(source, index=False)
    summary = ray_batch_predict(
        "churn@production",
        source,
        tmp_path / "out.csv",
        settings=jobs_model.settings,
        chunk_rows=250,
        concurrency=1,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (600, 598, 2)
    rejects = pd.read_csv(summary.rejects).sort_values("customer_id")
    assert rejects["customer_id"].tolist() == ["c0007", "c0300"]
    assert rejects["reason"].tolist() == [
        "feature 'support_calls' expects an integer, got 'lots'",
        "feature 'plan' is required",
    ]
    scored = pd.read_csv(tmp_path / "out.csv")
    assert len(scored) == 598 and scored["prediction"].dtype.kind == "i"


def test_ray_refuses_a_mixed_folder(jobs_model, table, tmp_path):
    (tmp_path / "in").mkdir()
    table.head(10).to_csv(tmp_path / "in" / "a.csv", index=False)
    table.head(10).to_parquet(tmp_path / "in" / "b.parquet")
    with pytest.raises(ValidationError, match="mixes CSV and Parquet"):
        ray_batch_predict(
            "churn@production", tmp_path / "in", tmp_path / "o", settings=jobs_model.settings
        )


def test_an_actor_gets_the_secret_values(tmp_path):
    @ray.remote
    def secret_seen(payload):
        return settings_from_payload(payload).jwt_secret.get_secret_value()

    settings = Settings(home=tmp_path, jwt_secret=SecretStr("jwt-s3cret"))
    assert ray.get(secret_seen.remote(settings_payload(settings))) == "jwt-s3cret"
