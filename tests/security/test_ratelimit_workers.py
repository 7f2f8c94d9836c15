"""Rate limits hold per identity across the workers of one server (issue 20, defect 8).

The unit test drives two bucket tables on one file, as two worker processes would; the server
test starts `mloop serve --workers 2` on 127.0.0.1 and sends each request on a new connection,
so the kernel spreads them over both workers.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import pytest

from mloop.security.ratelimit import LocalBuckets, SharedBuckets, make_limiter
from tests.support import govkit, modelkit, serverproc
from tests.support.env import clean_environ
from tests.support.loopkit import free_port


def test_two_tables_on_one_file_share_each_identity_budget(tmp_path):
    first = SharedBuckets(tmp_path, rate=0.001, burst=5)
    second = SharedBuckets(tmp_path, rate=0.001, burst=5)

    async def takes(key: str) -> list[bool]:
        return [await (first, second)[i % 2].take(key) == 0 for i in range(12)]

    assert sum(asyncio.run(takes("id:pred"))) == 5
    assert sum(asyncio.run(takes("id:root"))) == 5  # another identity: its own budget
    wait = asyncio.run(first.take("id:pred"))
    assert wait > 0
    asyncio.run(first.close())
    asyncio.run(second.close())
    assert isinstance(make_limiter(5, 5, shared_dir=tmp_path), SharedBuckets)
    assert isinstance(make_limiter(5, 5), LocalBuckets)


def test_a_full_table_reuses_the_least_recently_used_slot(tmp_path):
    buckets = SharedBuckets(tmp_path, rate=0.001, burst=1)
    buckets.SLOTS, buckets.PROBES = 4, 4  # a tiny table: every key collides
    for n in range(10):
        assert asyncio.run(buckets.take(f"id:{n}")) == 0, n
    asyncio.run(buckets.close())


@pytest.fixture(scope="module")
def served_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ratelimit-home")
    settings = modelkit.home_settings(home)
    modelkit.train_and_register(settings)
    return home, govkit.add_people(settings)


@pytest.mark.slow
def test_two_workers_let_through_at_most_the_burst(served_home, tmp_path):
    home, keys = served_home
    port = free_port()
    env = clean_environ(
        MLOOP_HOME=str(home),
        MLOOP_AUTH="on",
        MLOOP_RATE_LIMIT="0.05",  # the 5/s refills while a loaded machine sends
        # 12 requests; at one token per 20 s the refill is zero and the bound exact
        MLOOP_RATE_LIMIT_BURST="5",
        MLOOP_AUDIT_API_CALLS="false",
        GIT_PYTHON_REFRESH="quiet",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--workers", "2"]
    command += ["--log-level", "warning"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
    try:
        serverproc.wait_ready(url, proc)
        time.sleep(2)  # both workers up (the first answered /ready); buckets refill meanwhile
        headers = {"X-API-Key": keys["pred"]}
        started = time.monotonic()
        codes = [
            httpx.post(f"{url}/predict", json={"features": row}, headers=headers).status_code
            for _ in range(12)
        ]
        elapsed = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert set(codes) <= {200, 429}, codes
    # the burst, plus what the bucket refilled while the requests ran (one per 20 s);
    # per-worker buckets let up to 10 through
    assert codes.count(200) <= 5 + int(elapsed * 0.05), (codes, elapsed)
    assert 429 in codes
