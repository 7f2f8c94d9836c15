"""Where one `mloop serve --workers N` worker spends its CPU before `/ready`: step by step.

benchmarks/startup.py times whole servers; this splits one worker's path into what the model
needs anyway (the forest's numpy / pandas / scipy / scikit-learn, MLflow and its SQL stores,
FastAPI, SQLAlchemy) and what mloop adds (its own modules, `create_app`, the lifespan until
the model is loaded), each imported in that order in a fresh process, `--rounds` times
(median CPU seconds of each step). The first block is the model's stack and MLflow's registry
client; `mlflow models serve`'s workers skip the SQL stores (its supervisor resolves the model).

    python benchmarks/startup_steps.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import _env, _register_model

# what serving the forest from MLflow needs whatever the server (imported first, in order)
FLOOR = [
    "numpy",
    "pandas",
    "scipy.stats",
    "sklearn.ensemble",
    "sqlalchemy.orm",
    "fastapi",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
]

PROBE = """
import asyncio, importlib, json, sys, time
steps, last = [], time.process_time()
def mark(what):
    global last
    now = time.process_time(); steps.append([what, now - last]); last = now
for name in sys.argv[1].split(","):
    importlib.import_module(name); mark("import " + name)
import mloop.platform
mark("import mloop.platform")
import mloop.serving.app
mark("import mloop.serving.app")
app = mloop.platform.serve_worker_app()
mark("serve_worker_app() (create_app)")
async def main():
    async with app.router.lifespan_context(app):
        mark("lifespan to settled (model loaded)")
asyncio.run(main())
print("STEPS" + json.dumps(steps))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mloop-startup-steps-"))
    try:
        env = _env(work)
        os.environ.update(env)
        _register_model(work)
        env["MLOOP_SERVE_MODEL"] = "bench/1"
        rounds = [_probe(env) for _ in range(args.rounds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = mloop = 0.0
    print(f"\n{'CPU s (median)':>14}  step")
    for i, (what, _) in enumerate(rounds[0]):
        seconds = statistics.median(r[i][1] for r in rounds)
        if i < len(FLOOR):
            floor += seconds
        else:
            mloop += seconds
        print(f"{seconds:14.3f}  {what}")
    print(f"{floor:14.3f}  the floor: the model's stack, MLflow and its registry client")
    share = mloop / (floor + mloop)
    print(f"{mloop:14.3f}  what mloop adds before ready ({share:.0%} of the worker)")


def _probe(env: dict[str, str]) -> list[list]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(FLOOR)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.rsplit("STEPS", 1)[1])


if __name__ == "__main__":
    main()
