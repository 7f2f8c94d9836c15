"""The evaluation plots a training run logged under `plots/` (see `mloop.pipeline.plots`).

Read through a client bound to the given settings, for model cards and other pages that show
a version's plots without importing the training pipeline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mloop.registry.failures import mlflow_failures
from mloop.registry.tracking import client_for
from mloop.settings import Settings

PLOTS_DIR = "plots"


def run_plots(settings: Settings, run_id: str) -> dict[str, bytes]:
    """`{name: PNG bytes}` of the run's `plots/<name>.png`, sorted by name; empty when none."""
    client = client_for(settings)
    with mlflow_failures(settings.tracking_uri, f"reading the plots of run {run_id}"):
        entries = client.list_artifacts(run_id, PLOTS_DIR)
        names = sorted(Path(e.path).name for e in entries if e.path.endswith(".png"))
        if not names:
            return {}
        with tempfile.TemporaryDirectory(prefix="mloop-plots-") as tmp:
            local = Path(client.download_artifacts(run_id, PLOTS_DIR, tmp))
            return {Path(n).stem: (local / n).read_bytes() for n in names}
