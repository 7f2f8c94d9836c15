"""Serving throughput and latency: mloop vs `mlflow models serve`, a seed-style FastAPI app and
the bare HTTP floor, on one machine, one model, one run.

Model: a 100-tree random forest on 20 numeric features, registered in a temporary MLflow store
(`bench/1`), plus its ONNX build from `mloop optimize` (`bench/2`). Each server runs alone on
127.0.0.1 with 2 workers; `wrk` sends single-row POSTs (a pool of 512 different rows) over 64
connections, then mloop is measured again over 1 connection and compared with the model's own
single-row `predict_proba` in this process. mloop runs with its defaults (prediction log, live
drift, audit) except the prediction cache, which is off: repeated rows would be answered from
it, which is not what is being measured.

The floor runs twice: on stock uvicorn (the issue's floor) and on uvicorn with mloop's own HTTP
protocol (`mloop.serving.http`: one write per response), so the ratio is also shown against the
same HTTP stack mloop runs on.

Besides requests/s and latency, each server's own CPU time per 1,000 requests is read from
/proc (the server process and its workers): on a machine shared with other work, throughput is
noisy while CPU per request is not, and `--set MLOOP_X=value` runs the mloop servers with a
setting changed (e.g. `--set MLOOP_AUDIT_PREDICTION_CALLS=false`) to see what a feature costs.

Needs `wrk` (Debian: `apt-get install -y wrk`).

    python benchmarks/serving.py [--duration 15] [--connections 64] [--workers 2] [--set K=V]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FEATURES = [f"f{i}" for i in range(20)]
POOL = 512
PROBES = ("/ready", "/ping", "/predict")

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
local index = 0
init = function(args)
  local f = io.open("%(bodies)s", "r")
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
end
request = function()
  index = index %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[index])
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only these servers")
    parser.add_argument(
        "--set", action="append", default=[], metavar="MLOOP_X=VALUE", help="mloop setting"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="mloop-bench-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args) -> None:
    env = _env(work)
    os.environ.update(env)
    print(f"training and registering the model in {work} ...", flush=True)
    model, frame = _register_model(work)
    rows = frame.head(POOL)
    single = _single_row_ms(model, rows)
    bodies = {
        "mloop": [json.dumps({"features": r}) for r in _records(rows)],
        "mlflow": [json.dumps({"dataframe_records": [r]}) for r in _records(rows)],
    }
    servers = {
        "mloop /predict": (_mloop_cmd("bench/1", args.workers), "/predict", "mloop"),
        "mloop /predict (ONNX)": (_mloop_cmd("bench/2", args.workers), "/predict", "mloop"),
        "mlflow models serve /invocations": (
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/bench/1"]
            + ["--env-manager", "local", "-h", "127.0.0.1", "--workers", str(args.workers)],
            "/invocations",
            "mlflow",
        ),
        "seed-style FastAPI /predict": (
            _uvicorn("serving_apps:seed_app", args.workers, factory=True),
            "/predict",
            "mloop",
        ),
        "bare Starlette (floor)": (
            _uvicorn("serving_apps:floor", args.workers),
            "/predict",
            "mloop",
        ),
        "bare Starlette, mloop's HTTP protocol": (
            _uvicorn_one_write("serving_apps:floor", args.workers),
            "/predict",
            "mloop",
        ),
    }
    results = {}
    for name, (command, path, style) in servers.items():
        if args.only and not any(o in name for o in args.only):
            continue
        body_file = work / f"{style}.ndjson"
        body_file.write_text("\n".join(bodies[style]) + "\n")
        script = work / f"{style}{path.replace('/', '_')}.lua"
        script.write_text(LUA % {"bodies": body_file, "path": path})
        print(f"{name}: starting", flush=True)
        server_env = (
            {**env, **dict(kv.split("=", 1) for kv in args.set)} if style == "mloop" else env
        )
        server = _server(command, server_env, name == "mlflow models serve /invocations")
        with server as url:
            _wrk(url, script, 5, min(args.connections, 16))  # warm up every worker
            before = _tree_cpu(server.proc.pid)
            results[name] = _wrk(url, script, args.duration, args.connections)
            used = _tree_cpu(server.proc.pid) - before
            results[name]["cpu"] = used * 1e6 / max(results[name]["requests"], 1)
            if name == "mloop /predict":
                results["mloop /predict, 1 connection"] = _wrk(url, script, args.duration, 1)
        print(f"{name}: {results[name]}", flush=True)
    _report(results, single, args)


def _report(results: dict, single_ms: float, args) -> None:
    print()
    if args.set:
        print(f"mloop settings: {' '.join(args.set)}")
    print(
        f"{'server':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11}"
    )
    for name, r in results.items():
        cpu = f"{r['cpu']:11.0f}" if "cpu" in r else f"{'':11}"
        print(f"{name:40} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d} {cpu}")
    print(f"\nmodel's own single-row predict_proba, in process: p50 {single_ms:.2f} ms")
    ours = results.get("mloop /predict")
    peer = results.get("mlflow models serve /invocations")
    floor = results.get("bare Starlette (floor)")
    same_http = results.get("bare Starlette, mloop's HTTP protocol")
    seed = results.get("seed-style FastAPI /predict")
    onnx = results.get("mloop /predict (ONNX)")
    one = results.get("mloop /predict, 1 connection")
    print("\nratios")
    if ours and peer:
        print(f"  mloop / mlflow models serve   {ours['rps'] / peer['rps']:8.1f}x  (target >= 25x)")
    if ours and floor:
        print(f"  mloop / floor                 {ours['rps'] / floor['rps']:8.1%}  (target >= 35%)")
    if ours and same_http:
        print(f"  mloop / floor on mloop's HTTP {ours['rps'] / same_http['rps']:8.1%}")
    if ours and seed:
        print(f"  mloop / seed-style FastAPI    {ours['rps'] / seed['rps']:8.1f}x")
    if onnx and peer:
        print(f"  mloop ONNX / mlflow           {onnx['rps'] / peer['rps']:8.1f}x")
    if onnx and floor:
        print(f"  mloop ONNX / floor            {onnx['rps'] / floor['rps']:8.1%}")
    if onnx and same_http:
        print(f"  mloop ONNX / floor, same HTTP {onnx['rps'] / same_http['rps']:8.1%}")
    if ours:
        print(
            f"  mloop p99 at {args.connections} connections    {ours['p99']:8.2f} ms (target < 50)"
        )
    if one:
        gap = one["p50"] - single_ms
        print(f"  1-connection p50 - model call {gap:+8.2f} ms (target <= 1 ms)")


def _env(work: Path) -> dict[str, str]:
    """Every server reads the same temporary store; mloop's cache is off (see the docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOOP_", "PROMETHEUS_"))}
    env.update(
        MLOOP_HOME=str(work / "home"),
        MLOOP_CACHE_TTL_SECONDS="0",
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'home' / 'mlflow.db'}",
        BENCH_MODEL_URI="models:/bench/1",
        GIT_PYTHON_REFRESH="quiet",
        MLFLOW_LOGGING_LEVEL="WARNING",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    return env


def _register_model(work: Path):
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    from mloop.optimize import optimize
    from mloop.registry.tracking import configure_mlflow, ensure_experiment
    from mloop.settings import Settings

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(6000, 20)), columns=FEATURES)
    y = (frame.f0 + frame.f1 * frame.f2 + rng.normal(scale=0.5, size=6000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(frame[:5000], y[:5000])
    settings = Settings()
    settings.ensure_home()
    configure_mlflow(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=ensure_experiment("bench", settings)):
            mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(frame, model.predict(frame.head())),
                serialization_format="cloudpickle",
                registered_model_name="bench",
            )
    holdout = work / "holdout.csv"
    frame[5000:].to_csv(holdout, index=False)
    result = optimize("bench/1", settings, data=holdout)
    print(
        f"ONNX build bench/{result.version}: max probability difference {result.max_abs_diff:.2g}"
    )
    return model, frame[5000:]


def _single_row_ms(model, rows: pd.DataFrame) -> float:
    times = []
    for i in range(300):
        row = rows.iloc[[i % len(rows)]]
        started = time.perf_counter()
        model.predict_proba(row)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times[20:]))


def _records(rows: pd.DataFrame) -> list[dict]:
    return [{k: float(v) for k, v in r.items()} for r in rows.to_dict("records")]


def _mloop_cmd(ref: str, workers: int) -> list[str]:
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve", ref]
    return command + ["--workers", str(workers), "--host", "127.0.0.1", "--log-level", "warning"]


def _uvicorn(target: str, workers: int, factory: bool = False) -> list[str]:
    command = [str(BIN / "uvicorn"), target, "--host", "127.0.0.1", "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


def _uvicorn_one_write(target: str, workers: int) -> list[str]:
    """uvicorn with mloop's HTTP protocol (one write per response, `mloop.serving.http`)."""
    code = (
        "import sys, uvicorn; from mloop.serving.http import HTTP_PROTOCOL; "
        f"uvicorn.run({target!r}, host='127.0.0.1', port=int(sys.argv[-1]), workers={workers}, "
        "http=HTTP_PROTOCOL, log_level='warning', access_log=False)"
    )
    return [sys.executable, "-c", code]


class _server:
    """Start a server command on a free port; wait until it answers; stop it afterwards."""

    def __init__(self, command: list[str], env: dict, mlflow_style: bool) -> None:
        self.port = _free_port()
        flag = ["-p" if mlflow_style else "--port", str(self.port)]
        self.command = command + flag
        self.env = env

    def __enter__(self) -> str:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=HERE,
            start_new_session=True,
        )  # fmt: skip
        try:
            return self._wait()
        except BaseException:
            self.__exit__()
            raise

    def _wait(self) -> str:
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.command[0]} exited:\n{self.log.read().decode()[-3000:]}")
            try:  # mloop: /ready; mlflow: /ping; the peer apps: any answer (405 on GET)
                if any(httpx.get(url + p, timeout=2).status_code in (200, 405) for p in PROBES):
                    time.sleep(2)  # the other workers finish loading too
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.command} did not start")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is not None:
            self.log.close()
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def _wrk(url: str, script: Path, seconds: int, connections: int, threads: int = 2) -> dict:
    threads = min(threads, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    out = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": requests,
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
        "timeouts": int(socket_errors.group(1)) if socket_errors else 0,
    }


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def _latency(text: str, which: str) -> float:
    value, unit = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
