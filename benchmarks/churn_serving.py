"""Serving the demo's churn model: mloop against `mlflow models serve`, at 64 connections.

The model is the one `mloop demo` trains: `mloop.pipeline.train` on `generate_churn` rows (a
scikit-learn Pipeline: a ColumnTransformer of numeric, categorical and date feature steps in
front of a random forest), registered in a temporary MLflow store as `churn/1`. Each server
runs alone on 127.0.0.1 with 2 workers; `wrk` sends single-row POSTs (512 different raw rows,
with their missing values) over 64 connections, once with `-t1` and once with `-t2` (the load
generator shares the two cores, so its thread count moves the figures: both are reported).
mloop runs with its defaults (prediction log, live drift, audit) except the prediction cache,
which is off. CPU us/req is the server's own CPU time per answered request, read from /proc.

`--profile` also prints the in-process cost of the feature steps (`pipeline[:-1].transform`)
and of the whole `predict_proba`, per call, for 1 and 20 rows (the serving path's batch sizes).

    python benchmarks/churn_serving.py [--duration 10] [--rows 5000] [--only mloop] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from serving import BIN, LUA, _env, _mloop_cmd, _server, _tree_cpu, _wrk

POOL = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rows", type=int, default=5000, help="training rows (the demo's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only these servers (mloop, mlflow)")
    parser.add_argument("--profile", action="store_true", help="time the feature steps too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="mloop-churn-bench-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args) -> None:
    env = {**_env(work), "BENCH_MODEL_URI": "models:/churn/1"}
    os.environ.update(env)
    print(f"training the demo's churn model in {work} ...", flush=True)
    rows = _train(work, args.rows)
    if args.profile:
        _profile(rows)
    bodies = {
        "mloop": [json.dumps({"features": r}) for r in rows],
        "mlflow": [json.dumps({"dataframe_records": [r]}) for r in rows],
    }
    servers = {
        "mloop": (_mloop_cmd("churn/1", args.workers), "/predict"),
        "mlflow": (
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/churn/1"]
            + ["--env-manager", "local", "-h", "127.0.0.1", "--workers", str(args.workers)],
            "/invocations",
        ),
    }
    results = {}
    for name, (command, path) in servers.items():
        if args.only and name not in args.only:
            continue
        body_file = work / f"{name}.ndjson"
        body_file.write_text("\n".join(bodies[name]) + "\n")
        script = work / f"{name}.lua"
        script.write_text(LUA % {"bodies": body_file, "path": path})
        print(f"{name}: starting", flush=True)
        server = _server(command, env, name == "mlflow")
        with server as url:
            _wrk(url, script, 5, 16)  # warm up every worker
            for threads in (1, 2):
                before = _tree_cpu(server.proc.pid)
                result = _wrk(url, script, args.duration, 64, threads)
                used = _tree_cpu(server.proc.pid) - before
                result["cpu"] = used * 1e6 / max(result["requests"], 1)
                results[f"{name} wrk -t{threads}"] = result
                print(f"{name} -t{threads}: {result}", flush=True)
    head = f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11}"
    print(f"\n{'server':22} {head}")
    for name, r in results.items():
        print(
            f"{name:22} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d}"
            f" {r['cpu']:11.0f}"
        )
    for threads in (1, 2):
        ours, peer = results.get(f"mloop wrk -t{threads}"), results.get(f"mlflow wrk -t{threads}")
        if ours:
            print(f"mloop -t{threads}: p99 {ours['p99']:.1f} ms (target <= 50 ms)")
        if ours and peer:
            print(f"mloop / mlflow models serve, -t{threads}: {ours['rps'] / peer['rps']:.1f}x")


def _train(work: Path, rows: int) -> list[dict]:
    """Train and register `churn/1` as `mloop demo` does; the request rows (raw, JSON-safe)."""
    from mloop.data.churn import generate_churn
    from mloop.demo import feature_rows
    from mloop.pipeline.train import train
    from mloop.settings import Settings

    settings = Settings()
    settings.ensure_home()
    data = work / "churn.csv"
    generate_churn(rows, seed=42).to_csv(data, index=False)
    result = train(data, name="churn", settings=settings)
    print(f"registered churn/{result.version}", flush=True)
    requests = work / "requests.csv"
    generate_churn(POOL, seed=7).to_csv(requests, index=False)
    return feature_rows(requests, POOL)  # the demo's own request rows


def _profile(rows: list[dict]) -> None:
    """In-process time per call of the feature steps and the whole model (1 and 20 rows)."""
    import mlflow
    import pandas as pd

    model = mlflow.sklearn.load_model("models:/churn/1")
    features = model[:-1]
    for n in (1, 20):
        frame = pd.DataFrame(rows[:n])
        for label, call in (
            ("feature steps", lambda f=frame: features.transform(f)),
            ("predict_proba", lambda f=frame: model.predict_proba(f)),
        ):
            call()
            started = time.perf_counter()
            for _ in range(50):
                call()
            print(f"{label:14} {n:3d} rows: {(time.perf_counter() - started) / 50 * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
