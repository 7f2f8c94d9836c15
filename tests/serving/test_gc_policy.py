"""Building and running an app leaves the interpreter's GC alone; `mloop serve` opts in."""

from __future__ import annotations

import gc

import pytest

from mloop.serving.app import create_app
from mloop.serving.server import ServerThread


@pytest.mark.parametrize("freeze", [False, True], ids=["app", "mloop-serve"])
def test_only_a_serving_process_freezes_the_heap(trained, freeze):
    gc.unfreeze()
    threshold = gc.get_threshold()
    app = create_app(
        "churn@production", trained.settings, log_predictions=False, freeze_heap=freeze
    )
    try:
        with ServerThread(app):  # returns once the model loaded
            assert app.mloop.runtime.ready
            assert (gc.get_freeze_count() > 0) is freeze
            assert gc.get_threshold() == threshold
    finally:
        gc.unfreeze()
