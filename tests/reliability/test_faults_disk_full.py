"""Fault: the disk holding the prediction log (SQLite on a 2 MB tmpfs) fills up, then frees.

Guarantees proven: predictions keep being answered; the failure is clear (`/ready` "degraded"
naming the prediction log and "database or disk is full",
`mloop_prediction_log_write_errors_total`); the server does not restart or crash loop (same
process, same worker); once space returns every acknowledged row is written.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from mloop.store import Database, PredictionRecord
from tests.reliability.load import PredictLoad
from tests.support import modelkit
from tests.support.modelkit import sample
from tests.support.waiting import wait_for


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs (needs root and mount); skipped with the reason otherwise."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the disk refuses: ENOSPC."""
    filler = folder / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
    return filler


def test_a_full_prediction_log_disk_is_reported_and_recovers(trained_home, small_disk):
    log_db = Database(f"sqlite:///{small_disk / 'predictions.db'}")
    log_db.migrate()
    settings = trained_home.settings.model_copy(update={"cache_ttl_seconds": 0.0})
    rows = modelkit.json_rows(trained_home.frame.head(50))
    server = ServerThread(create_app("churn@production", settings, database=log_db)).start()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        with PredictLoad(server.url, rows) as load:
            wait_for(lambda: load.count() >= 20, "predictions before the disk fills")
            filler = _fill(small_disk)

            def degraded():
                body = http.get("/ready").json()
                return body if body["status"] == "degraded" else None

            ready = wait_for(degraded, "/ready to report the full disk")
            assert "full" in ready["degraded"]["prediction_log"]["error"], ready
            metrics = http.get("/metrics").text
            assert sample(metrics, "mloop_prediction_log_write_errors_total") >= 1
            during = load.count()
            wait_for(lambda: load.count() >= during + 40, "answers while the disk is full")
            workers = set(load.workers)
            filler.unlink()  # space returns
            wait_for(lambda: http.get("/ready").json()["status"] == "ready", "recovery")
            after = load.count()
            wait_for(lambda: load.count() >= after + 20, "answers after the recovery")
        assert load.failures == [], load.failures[:5]
        assert set(load.workers) == workers  # one process all along: no restart, no loop
        server.app.state.mloop.prediction_log.flush()
        assert sample(http.get("/metrics").text, "mloop_prediction_log_dropped_total") == 0
        http.close()
    finally:
        server.stop()
    with log_db.session() as session:
        stored = set(session.scalars(select(PredictionRecord.id)))
    log_db.dispose()
    missing = set(load.ids) - stored
    assert not missing, f"{len(missing)} of {len(load.ids)} acknowledged rows not written"
