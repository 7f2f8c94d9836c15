"""The Redis online store, by configuration alone: the same repo, `online_store: {type: redis}`
on this machine's Redis (127.0.0.1:6379) under a unique project name, removed after."""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest
import redis

from mloop.features import feast_env
from mloop.features.feast_client import FeastSource, online_frame
from tests.support import feastkit
from tests.support.loopkit import tool_missing

REDIS = "127.0.0.1:6379"
ONLINE = f'online_store:\n  type: redis\n  connection_string: "{REDIS}"\n'


@pytest.fixture
def redis_repo(tmp_path):
    try:
        redis.Redis.from_url(f"redis://{REDIS}/0").ping()
    except redis.RedisError as exc:
        tool_missing(f"Redis at {REDIS} is not reachable: {exc}")
    venv = feastkit.feast_venv()
    project = f"mloop_r{os.getpid()}_{uuid.uuid4().hex[:6]}"
    repo = feastkit.make_repo(tmp_path, project, online_store=ONLINE)
    feast_env.apply(venv, repo)
    try:
        yield venv, repo, project
    finally:
        feast_env.run_feast(venv, repo, ["teardown"])


def test_online_features_from_redis(redis_repo):
    from datetime import UTC, datetime

    venv, repo, project = redis_repo
    before = redis.Redis.from_url(f"redis://{REDIS}/0").dbsize()
    feast_env.materialize(
        venv, repo, datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 3, 15, tzinfo=UTC)
    )
    assert redis.Redis.from_url(f"redis://{REDIS}/0").dbsize() >= before + feastkit.CUSTOMERS
    with feastkit.feature_server(venv, repo) as url:
        keys = pd.DataFrame({"customer_id": [3, 11]})
        frame = online_frame(FeastSource(url, feastkit.FEATURES), keys)
    assert frame["support_calls"].tolist() == [3, 3]  # March: the latest snapshot in the window
    stats = feastkit.stats_frame()
    march = stats[(stats.customer_id == 11) & (stats.support_calls == 3)].iloc[0]
    assert frame["tenure"].iloc[1] == pytest.approx(march["tenure"])
    assert (repo / "feature_store.yaml").read_text().count(project) == 1
