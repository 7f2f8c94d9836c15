"""Batch scoring benchmark: mloop's local and Ray engines against the model's own predict_proba
and `mlflow models predict`, on the same file.

    .venv/bin/python benchmarks/batch_predict.py                 # 5,000,000 rows (and 1,000,000)
    .venv/bin/python benchmarks/batch_predict.py --rows 500000   # a quicker run

What it does, in a work folder under /tmp (the files are large):
1. trains a 100-tree random forest on 20 numeric features (a 20,000-row sample), logs it to
   MLflow with a signature and registers it as `bench_rf` version 1;
2. writes the input as Parquet and CSV (ROWS rows, plus an id column), streamed to disk, and a
   SMALL-row Parquet file to show that memory does not grow with the input;
3. runs, each in its own process so peak memory (max RSS) is that run's alone:
   - the limit: the model's `predict_proba` over all rows, loaded in memory beforehand;
   - `mloop batch-predict` on the local engine (Parquet ROWS, Parquet SMALL, CSV ROWS);
   - `mloop batch-predict --engine ray` (Parquet ROWS);
   - `mlflow models predict -t csv --env-manager local` (CSV ROWS);
4. prints rows/s, the ratio to the limit, and peak RSS, as a table and as JSON.

The targets (issue #7): local engine >= 70% of predict_proba's rows/s, peak RSS <= 1.5 GiB and
the same for 1M and 5M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FEATURES = 20
TREES = 100


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env.update(MLOOP_HOME=str(work / "home"), GIT_PYTHON_REFRESH="quiet")
    env.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # `mlflow models predict` finds the registry through MLflow's own variable
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'home' / 'mlflow.db'}"
    return env


def train(work: Path) -> str:
    """Fit and register the forest; returns the model URI."""
    import warnings

    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    from mloop.registry.tracking import configure_mlflow, ensure_experiment
    from mloop.settings import Settings

    settings = Settings(home=work / "home")
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    if client.search_registered_models(filter_string="name = 'bench_rf'"):
        return "models:/bench_rf/1"
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(20_000, FEATURES)), columns=_columns())
    y = (x.iloc[:, :5].sum(axis=1) + rng.normal(scale=1.0, size=len(x)) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=TREES, max_depth=12, n_jobs=-1, random_state=0)
    model.fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.set_experiment(experiment_id=ensure_experiment("bench", settings))
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(x.head(100), model.predict(x.head(100))),
                serialization_format="cloudpickle",
                registered_model_name="bench_rf",
            )
    return "models:/bench_rf/1"


def _columns() -> list[str]:
    return [f"f{i:02d}" for i in range(FEATURES)]


def write_inputs(work: Path, rows: int, small: int) -> dict[str, Path]:
    """Parquet and CSV of `rows` rows and a Parquet of `small` rows, written in slices."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    paths = {
        "parquet": work / f"input-{rows}.parquet",
        "csv": work / f"input-{rows}.csv",
        "small": work / f"input-{small}.parquet",
    }
    step = 250_000
    for key, count in (("parquet", rows), ("csv", rows), ("small", small)):
        path = paths[key]
        if path.exists():
            continue
        rng = np.random.default_rng(1)
        temporary = path.with_suffix(".tmp")
        writer = None
        for start in range(0, count, step):
            n = min(step, count - start)
            data = {"id": pa.array(np.arange(start, start + n))}
            values = rng.normal(size=(n, FEATURES))
            for i, name in enumerate(_columns()):
                data[name] = pa.array(values[:, i])
            table = pa.table(data)
            if writer is None:
                writer = (
                    pacsv.CSVWriter(temporary, table.schema)
                    if key == "csv"
                    else pq.ParquetWriter(temporary, table.schema)
                )
            writer.write_table(table)
        writer.close()
        temporary.rename(path)
    return paths


# -- children: each runs one measurement in its own process ------------------------------------


def child_limit(path: str) -> dict:
    """The model's own predict_proba over every row, data already in memory (the limit)."""
    import mlflow
    import pyarrow.parquet as pq

    from mloop.registry.tracking import configure_mlflow
    from mloop.settings import get_settings

    configure_mlflow(get_settings())
    model = mlflow.sklearn.load_model("models:/bench_rf/1")
    frame = pq.read_table(path, columns=_columns()).to_pandas()
    started = time.perf_counter()
    model.predict_proba(frame)
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


def child_mloop(path: str, output: str, engine: str, chunk_rows: int) -> dict:
    from mloop.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    if engine == "ray":
        from mloop.jobs.ray import ray_batch_predict

        summary = ray_batch_predict(
            "bench_rf/1", path, output, settings=settings, chunk_rows=chunk_rows, restart=True
        )
    else:
        from mloop.jobs.batch import batch_predict

        summary = batch_predict(
            "bench_rf/1", path, output, settings=settings, chunk_rows=chunk_rows, restart=True
        )
    total = time.perf_counter() - started
    # Throughput is measured once the model is loaded, as for the limit (load time reported).
    return {"seconds": total - summary.load_seconds, "rows": summary.rows, "total": total}


def _child_main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "limit":
        result = child_limit(rest[0])
    else:
        result = child_mloop(rest[0], rest[1], kind, int(rest[2]))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def measure(command: list[str], env: dict[str, str], rows: int) -> dict:
    """Run a command; wall time and peak RSS (largest process of its tree that was waited for)."""
    wrapper = (
        "import json,resource,subprocess,sys,time\n"
        "t=time.perf_counter()\n"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True)\n"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024\n"
        "print('WRAPPED '+json.dumps({'wall':time.perf_counter()-t,'rc':p.returncode,"
        "'rss':r,'out':p.stdout[-4000:],'err':p.stderr[-4000:]}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("WRAPPED "))
    wrapped = json.loads(line[len("WRAPPED ") :])
    if wrapped["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{wrapped['err']}")
    inner = next(
        (json.loads(x[7:]) for x in wrapped["out"].splitlines() if x.startswith("RESULT ")), {}
    )
    seconds = inner.get("seconds", wrapped["wall"])
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "wall_seconds": round(wrapped["wall"], 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mib": round(inner.get("peak_rss_mib", wrapped["rss"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mloop-bench-batch"))
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = _env(args.work)
    os.environ.update(env)
    print(f"training and registering bench_rf ({TREES} trees, {FEATURES} features)...")
    train(args.work)
    print(f"writing inputs ({args.rows:,} and {args.small_rows:,} rows) under {args.work}...")
    paths = write_inputs(args.work, args.rows, args.small_rows)
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    out = args.work / "out"
    chunk = str(args.chunk_rows)
    runs: dict[str, dict] = {}
    plan = [
        ("predict_proba in memory (limit)", [*me, "limit", str(paths["parquet"])], args.rows),
        (
            "mloop local, Parquet",
            [*me, "local", str(paths["parquet"]), str(out / "local.parquet"), chunk],
            args.rows,
        ),
        (
            f"mloop local, Parquet {args.small_rows:,} rows",
            [*me, "local", str(paths["small"]), str(out / "small.parquet"), chunk],
            args.small_rows,
        ),
        (
            "mloop local, CSV",
            [*me, "local", str(paths["csv"]), str(out / "local.csv"), chunk],
            args.rows,
        ),
    ]
    if not args.skip_ray:
        plan.append(
            (
                "mloop ray (2 actors), Parquet",
                [*me, "ray", str(paths["parquet"]), str(out / "ray.parquet"), chunk],
                args.rows,
            )
        )
    if not args.skip_mlflow:
        mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
        plan.append(
            (
                "mlflow models predict, CSV",
                [mlflow_cli, "models", "predict", "-m", "models:/bench_rf/1", "-i"]
                + [str(paths["csv"]), "-t", "csv", "--env-manager", "local"]
                + ["-o", str(out / "mlflow.json")],
                args.rows,
            )
        )
    out.mkdir(exist_ok=True)
    for name, command, rows in plan:
        print(f"running: {name} ...", flush=True)
        runs[name] = measure(command, env, rows)
        print(f"  {runs[name]}", flush=True)
    limit = runs["predict_proba in memory (limit)"]["rows_per_second"]
    print()
    print(f"{'run':44} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs limit':>9} {'peak RSS':>10}")
    for name, run in runs.items():
        ratio = run["rows_per_second"] / limit
        run["ratio_to_limit"] = round(ratio, 3)
        print(
            f"{name:44} {run['rows']:>10,} {run['seconds']:>8.1f} {run['rows_per_second']:>10,}"
            f" {ratio:>8.0%} {run['peak_rss_mib']:>7,} MiB"
        )
    print("\nJSON " + json.dumps({"rows": args.rows, "chunk_rows": args.chunk_rows, "runs": runs}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
    else:
        main()
