"""Mirror a training run to Weights & Biases: params as config, metrics as summary, plots.

Active only when `MLOOP_WANDB_PROJECT` is set; needs the extra `mloop[wandb]`. W&B's own
variables apply (`WANDB_MODE=offline` writes the run under `WANDB_DIR` and sends nothing,
`WANDB_API_KEY`, `WANDB_ENTITY`). The MLflow run stays the record: any failure of the mirror,
a missing extra included, is logged as a warning and never fails training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from mloop.errors import require
from mloop.settings import Settings

log = logging.getLogger(__name__)


def mirror_run(
    settings: Settings,
    *,
    run_id: str,
    model_name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    plots: list[Path],
    tags: Mapping[str, str] | None = None,
) -> bool:
    """Mirror one run when a W&B project is configured; True when it was mirrored."""
    if not settings.wandb_project:
        return False
    try:
        _mirror(settings.wandb_project, run_id, model_name, params, metrics, plots, tags or {})
    except Exception as exc:  # noqa: BLE001 - the mirror must never fail training
        log.warning("W&B mirror of run %s failed (training is unaffected): %s", run_id, exc)
        return False
    return True


def _mirror(
    project: str,
    run_id: str,
    model_name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    plots: list[Path],
    tags: Mapping[str, str],
) -> None:
    wandb = require("wandb", "wandb")
    run = wandb.init(
        project=project,
        name=f"{model_name}-{run_id[:8]}",
        group=model_name,
        job_type="train",
        config={**params, "mlflow_run_id": run_id},
        tags=[model_name, *(f"{k}={v}"[:64] for k, v in tags.items())],
        settings=wandb.Settings(console="off", save_code=False),  # leave stdout alone
    )
    try:
        run.log({**metrics, **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots}})
        run.summary.update(dict(metrics))
    finally:
        run.finish()
