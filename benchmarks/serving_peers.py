"""Serving against the peers users would pick: mloop vs Seldon MLServer and Ray Serve, on one
machine, one model, one run.

Model: benchmarks/serving.py's 100-tree forest on 20 features (`bench/1` for mloop; the same
fitted object saved with joblib for MLServer's scikit-learn runtime and loaded by the Ray
Serve deployment). Every server runs on 127.0.0.1 with 2 workers: mloop `--workers 2`, MLServer
`parallel_workers: 2`, Ray Serve 2 replicas behind its HTTP proxy. Each peer runs in its own
virtualenv (benchmarks/.venv-mlserver, .venv-rayserve), created on first use from
requirements-mlserver.txt / requirements-rayserve.txt. Before timing, each server answers five
rows and its labels must equal the model's own. `wrk` then sends single-row POSTs (512
different rows) over 64 connections, once with `-t1` and once with `-t2` (the load generator
shares the 2 cores).

    python benchmarks/serving_peers.py [--duration 15] [--only mlserver ray]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import httpx
import joblib

from serving import (
    LUA,
    POOL,
    _env,
    _free_port,
    _mloop_cmd,
    _records,
    _register_model,
    _server,
    _tree_cpu,
    _wrk,
)

HERE = Path(__file__).resolve().parent
VENVS = {"mlserver": HERE / ".venv-mlserver", "rayserve": HERE / ".venv-rayserve"}
CHECK_ROWS = 5

# The Ray Serve deployment: the same joblib forest, 2 replicas, JSON {"features": {...}} in,
# {"prediction", "probability"} out (mloop's /predict body); GET answers once it is running.
RAY_APP = """
import os, sys
import joblib, pandas as pd
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
class Forest:
    def __init__(self):
        self.model = joblib.load(os.environ["BENCH_JOBLIB"])
        self.columns = list(self.model.feature_names_in_)

    async def __call__(self, request: Request):
        if request.method == "GET":
            return PlainTextResponse("ok")
        features = (await request.json())["features"]
        frame = pd.DataFrame([[features[c] for c in self.columns]], columns=self.columns)
        probabilities = self.model.predict_proba(frame)[0]
        best = int(probabilities.argmax())
        return JSONResponse({"prediction": int(self.model.classes_[best]),
                             "probability": float(probabilities[best])})

serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
serve.run(Forest.bind(), route_prefix="/", blocking=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="run only these servers (name parts)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="mloop-peers-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_venv(name: str) -> Path:
    """The peer's own virtualenv (created from benchmarks/requirements-<name>.txt once)."""
    python = VENVS[name] / "bin" / "python"
    if not python.exists():
        print(f"creating {VENVS[name]} ...", flush=True)
        venv.create(VENVS[name], with_pip=True)
        requirements = HERE / f"requirements-{name}.txt"
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True
        )
    return python


class _peer(_server):
    """A peer server on a port of its own choosing: ready when GET `probe` answers 200."""

    def __init__(self, command: list[str], env: dict, port: int, probe: str) -> None:
        self.port, self.command, self.env, self.probe = port, command, env, probe

    def _wait(self) -> str:
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.command[0]} exited:\n{self.log.read().decode()[-3000:]}")
            try:
                if httpx.get(url + self.probe, timeout=2).status_code == 200:
                    time.sleep(2)  # the other workers finish loading too
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.command} did not start")


def run(work: Path, args) -> None:
    env = _env(work)
    os.environ.update(env)
    print(f"training and registering the model in {work} ...", flush=True)
    model, frame = _register_model(work)
    rows = frame.head(POOL)
    records = _records(rows)
    expected = [int(v) for v in model.predict(rows.head(CHECK_ROWS))]
    joblib.dump(model, work / "model.joblib")
    env = {**env, "BENCH_JOBLIB": str(work / "model.joblib")}
    columns = list(rows.columns)
    bodies = {
        "predict": [json.dumps({"features": r}) for r in records],
        "v2-mloop": [
            json.dumps({"inputs": [_tensor(c, [r[c]], [1]) for c in columns]}) for r in records
        ],
        "v2-mlserver": [
            json.dumps({"inputs": [_tensor("input-0", [r[c] for c in columns], [1, len(columns)])]})
            for r in records
        ],
    }
    servers = {
        "mloop /predict": lambda: _mloop(args, env, "/predict"),
        "mloop /v2/models/bench/infer": lambda: _mloop(args, env, "/v2/models/bench/infer"),
        "MLServer /v2/models/forest/infer": lambda: _mlserver(work, env),
        "Ray Serve /": lambda: _rayserve(work, env),
    }
    results = {}
    for name, start in servers.items():
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        server, path, style = start()
        body_file = work / f"{style}.ndjson"
        body_file.write_text("\n".join(bodies[style]) + "\n")
        script = work / f"{style}.lua"
        script.write_text(LUA % {"bodies": body_file, "path": path})
        print(f"{name}: starting", flush=True)
        with server as url:
            labels = [_label(url, path, bodies[style][i]) for i in range(CHECK_ROWS)]
            if labels != expected:
                raise SystemExit(f"{name} answers {labels}, the model {expected}")
            _wrk(url, script, 3, 16)  # warm up every worker
            for threads in (1, 2):
                before = _tree_cpu(server.proc.pid)
                result = _wrk(url, script, args.duration, args.connections, threads)
                result["cpu"] = (_tree_cpu(server.proc.pid) - before) * 1e6 / result["requests"]
                results[f"{name}, wrk -t{threads}"] = result
                print(f"{name} -t{threads}: {result}", flush=True)
    _report(results, args)


def _tensor(name: str, data: list, shape: list[int]) -> dict:
    return {"name": name, "shape": shape, "datatype": "FP64", "data": data}


def _label(url: str, path: str, body: str) -> int:
    """The predicted class of one answer, whichever server's format it is in."""
    answer = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})
    answer.raise_for_status()
    document = answer.json()
    if "prediction" in document:
        return int(document["prediction"])
    outputs = {o["name"]: o for o in document["outputs"]}
    if "label" in outputs:  # mloop's V2
        return int(outputs["label"]["data"][0])
    return int(outputs["predict"]["data"][0])  # MLServer's scikit-learn runtime


def _mloop(args, env: dict, path: str):
    command = _mloop_cmd("bench/1", 2)
    return _server(command, env, False), path, "v2-mloop" if path.startswith("/v2") else "predict"


def _mlserver(work: Path, env: dict):
    python = ensure_venv("mlserver")
    folder = work / "mlserver"
    folder.mkdir()
    port = _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "parallel_workers": 2,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "forest",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(work / "model.joblib")},
    }
    (folder / "model-settings.json").write_text(json.dumps(model))
    command = [str(python.parent / "mlserver"), "start", str(folder)]
    server = _peer(command, env, port, "/v2/models/forest/ready")
    return server, "/v2/models/forest/infer", "v2-mlserver"


def _rayserve(work: Path, env: dict):
    python = ensure_venv("rayserve")
    script = work / "ray_forest.py"
    script.write_text(RAY_APP)
    port = _free_port()
    ray_env = {**env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_SERVE_LOG_LEVEL": "WARNING"}
    ray_env.pop("PYTHONPATH", None)
    server = _peer([str(python), str(script), str(port)], ray_env, port, "/")
    return server, "/", "predict"


def _report(results: dict, args) -> None:
    print(
        f"\n{'server':46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:46} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d} "
            f"{r['cpu']:11.0f}"
        )
    print(f"\nratios (at {args.connections} connections; target: mloop ahead in req/s and p99)")
    for threads in (1, 2):
        ours = results.get(f"mloop /predict, wrk -t{threads}")
        v2 = results.get(f"mloop /v2/models/bench/infer, wrk -t{threads}")
        for peer, mine in (("MLServer /v2/models/forest/infer", v2), ("Ray Serve /", ours)):
            theirs = results.get(f"{peer}, wrk -t{threads}")
            if mine and theirs:
                print(
                    f"  -t{threads} mloop / {peer:34} req/s {mine['rps'] / theirs['rps']:6.2f}x"
                    f"  p99 {mine['p99']:.1f} vs {theirs['p99']:.1f} ms"
                )
        mlserver = results.get(f"MLServer /v2/models/forest/infer, wrk -t{threads}")
        if ours and mlserver:
            print(
                f"  -t{threads} mloop /predict / MLServer V2        req/s "
                f"{ours['rps'] / mlserver['rps']:6.2f}x"
            )


if __name__ == "__main__":
    main()
