"""Fault: the artifact of the version an alias moves to is corrupt or unreadable.

Guarantees proven, on a real uvicorn server under load: the previous version keeps answering
every request; the failed swap is reported (`/ready` and `/model/info` `swap.last_failure`,
`mloop_model_swaps_total{result="failed"}`); a good version is picked up afterwards.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import mlflow
import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from tests.reliability.load import PredictLoad
from tests.support import modelkit
from tests.support.modelkit import sample
from tests.support.waiting import wait_for


def _client(settings) -> mlflow.MlflowClient:
    uri = settings.tracking_uri
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _damage(settings, version: str, how: str) -> None:
    location = urlparse(_client(settings).get_model_version_download_uri("churn", version)).path
    pickles = list(Path(location).rglob("model.pkl"))
    assert pickles, f"no model.pkl under {location}"
    for path in pickles:
        if how == "corrupt":  # the bytes of a half-copied file
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3] + b"\x00garbage")
        else:  # unreadable: a directory where the file was (root reads any mode, not this)
            path.unlink()
            path.mkdir()


@pytest.mark.parametrize("how", ["corrupt", "unreadable"])
def test_a_damaged_version_is_not_swapped_in_under_load(trained_home, how):
    settings = trained_home.settings.model_copy(
        update={"model_poll_seconds": 0.2, "cache_ttl_seconds": 0.0}
    )
    client = _client(settings)
    client.set_registered_model_alias("churn", "production", trained_home.version)
    damaged = modelkit.train_and_register(settings, alias="candidate").version
    _damage(settings, damaged, how)
    rows = modelkit.json_rows(trained_home.frame.head(30))
    server = ServerThread(create_app("churn@production", settings, log_predictions=False))
    server.start()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        with PredictLoad(server.url, rows) as load:
            wait_for(lambda: load.count() >= 20, "predictions before the swap")
            client.set_registered_model_alias("churn", "production", damaged)

            def failed():
                swap = http.get("/ready").json()["swap"]
                return swap if swap["state"] == "failed" else None

            swap = wait_for(failed, f"the swap to damaged version {damaged} to fail")
            after = load.count()
            wait_for(lambda: load.count() >= after + 20, "predictions after the failed swap")
        assert load.failures == [], load.failures[:5]
        assert set(load.versions) == {trained_home.version}
        assert swap["serving_version"] == trained_home.version
        assert swap["last_failure"]["version"] == damaged and swap["last_failure"]["error"]
        info = http.get("/model/info").json()
        assert info["version"] == trained_home.version
        assert info["swap"]["last_failure"]["version"] == damaged
        metrics = http.get("/metrics").text
        assert sample(metrics, "mloop_model_swaps_total", result="failed") >= 1
        assert sample(metrics, "mloop_model_swaps_total", result="success") == 0

        good = modelkit.train_and_register(settings, alias="candidate").version
        client.set_registered_model_alias("churn", "production", good)
        wait_for(
            lambda: http.get("/ready").json()["model_version"] == good, "the swap to a good one"
        )
        assert sample(http.get("/metrics").text, "mloop_model_swaps_total", result="success") == 1
        http.close()
    finally:
        server.stop()
        client.set_registered_model_alias("churn", "production", trained_home.version)
