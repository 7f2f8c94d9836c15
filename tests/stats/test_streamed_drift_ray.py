"""`scan_drift(engine="ray")`: summaries per block on a local Ray, merged on the driver."""

from __future__ import annotations

import pytest

from mloop.stats.scan import scan_drift
from tests.conftest import service_missing
from tests.stats.test_streamed_drift import _bench, assert_same_verdicts

pytestmark = [
    pytest.mark.slow,
    # Ray Data reads its own deprecated settings when it copies its context: not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


@pytest.fixture(scope="module")
def ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        service_missing("ray is not installed (the `ray` extra)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_gives_the_local_verdicts(ray, tmp_path):
    ref, cur = _bench().make_tables(30_000, 3_000, tmp_path)
    local = scan_drift(ref, cur)
    on_ray = scan_drift(ref, cur, engine="ray")
    assert_same_verdicts(on_ray, local)
    for mine, theirs in zip(on_ray.columns, local.columns, strict=True):
        assert mine.value == pytest.approx(theirs.value, rel=1e-9), mine.column
