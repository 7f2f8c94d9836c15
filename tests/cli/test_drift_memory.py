"""`mloop drift` on a reference larger than the process may hold: it reads by row batches.

The limit is RLIMIT_AS (address space) in the child process. numpy's and pyarrow's virtual
reservations fit under it once glibc's per-thread malloc arenas are capped
(MALLOC_ARENA_MAX) and BLAS runs one thread; the reference's columns alone would need more
than the whole limit, and the test checks that loading it whole fails under the same limit.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

LIMIT = 700 << 20  # bytes of address space for the child
ROWS, COLUMNS, GROUP = 12_000_000, 8, 1_000_000  # 768 MB of float64 in memory
DRIFTED = {"x1", "x5"}

pytestmark = pytest.mark.slow


def write(path, rows, drift, seed):
    rng = np.random.default_rng(seed)
    schema = pa.schema([(f"x{i}", pa.float64()) for i in range(COLUMNS)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP):
            n = min(GROUP, rows - start)
            # rounded values: a small file on disk for a large table in memory
            cols = [np.round(rng.normal(0.6 * (drift and f"x{i}" in DRIFTED), 1, n), 1)
                    for i in range(COLUMNS)]  # fmt: skip
            writer.write_table(pa.table(cols, schema=schema))


def limited(args):
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    env = dict(os.environ, MALLOC_ARENA_MAX="2", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run(args, preexec_fn=cap, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_drift_of_a_reference_larger_than_the_memory_limit(tmp_path):
    ref, cur, out = tmp_path / "ref.parquet", tmp_path / "cur.parquet", tmp_path / "out.json"
    write(ref, ROWS, False, 1)
    write(cur, 200_000, True, 2)
    assert ROWS * COLUMNS * 8 > LIMIT
    whole = limited(
        [sys.executable, "-c", f"import pyarrow.parquet as pq; pq.read_table({str(ref)!r})"]
    )
    assert whole.returncode != 0  # loading the reference whole does not fit
    script = Path(sys.executable).parent / "mloop"  # the installed CLI, as a user runs it
    mloop = [str(script), "drift", str(ref), str(cur), "--json", str(out)]
    done = limited(mloop)
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(out.read_text())
    assert body["reference_rows"] == ROWS
    drifted = {name for name, c in body["columns"].items() if c["drift_detected"]}
    assert drifted == DRIFTED
