"""Added latency of the Feast entity path: `/predict` with `{"entity": ...}` vs the features.

Builds the examples/feast repo in a temp folder with the Feast venv (MLOOP_FEAST_VENV, made by
`mloop features feast-env`), `feast apply`, `feast materialize`, `feast serve`, trains a model on
`historical_frame`, starts a real `uvicorn` mloop server pointed at Feast (prediction cache off:
the keys repeat) and drives `/predict` with `--concurrency` connections, alternating rounds of
the two bodies for the same customers (wrk). Prints requests/s and p50/p99 latency per path and
the difference: what one online lookup adds to a request at that load. Both servers share the
machine's cores, so on a 2-core box the figure includes Feast's CPU competing with mloop's.

    cd benchmarks && ../.venv/bin/python feast_lookup.py --seconds 10 --rounds 3 --feast-workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.feastkit: the same repo and model as the tests

from tests.support import feastkit  # noqa: E402

import serving  # noqa: E402  (its wrk Lua script and parser)
from mloop.features import feast_env  # noqa: E402
from mloop.features.feast_history import historical_frame  # noqa: E402


def wait_ready(url: str, what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready")


def start(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)


def drive(url: str, bodies: list[dict], seconds: float, connections: int, work: Path) -> dict:
    """wrk (`serving.py`'s Lua script: the bodies in turn) for `seconds` at `connections`;
    requests/s, p50 and p99 in ms, non-2xx answers."""
    name = "entity" if "entity" in bodies[0] else "features"
    lines = work / f"{name}.ndjson"
    lines.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    script = work / f"{name}.lua"
    script.write_text(serving.LUA % {"bodies": lines, "path": "/predict"})
    return serving._wrk(url, script, int(seconds), connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--feast-workers", type=int, default=2, help="`feast serve --workers`")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-tools" / "feast")
    args = parser.parse_args()
    if not (args.venv / "bin" / "feast").exists():
        raise SystemExit(f"no Feast venv at {args.venv}: run `mloop features feast-env`")
    work = Path(tempfile.mkdtemp(prefix="mloop-feast-bench-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    from mloop.settings import Settings

    repo = feastkit.make_repo(work, f"mloop_bench_{os.getpid()}")
    feast_env.apply(args.venv, repo)
    feast_env.materialize(args.venv, repo, pd.Timestamp("2023-12-01", tz="UTC").to_pydatetime(),
                          pd.Timestamp("2024-03-15", tz="UTC").to_pydatetime())  # fmt: skip
    labels = work / "labels.parquet"
    customers = list(range(1, feastkit.CUSTOMERS + 1))
    pd.DataFrame({"customer_id": customers, "event_timestamp": pd.Timestamp("2024-03-10", tz="UTC"),
                  "churned": [c % 2 for c in customers]}).to_parquet(labels)  # fmt: skip
    source = {"repo": str(repo), "features": list(feastkit.FEATURES)}
    frame = historical_frame(source, labels, venv=args.venv)
    home = work / "home"
    settings = Settings(home=home, fallback_model_uris=[])
    settings.ensure_home()
    feastkit.train_on(settings, frame, "churned", "churn")
    feast_port, mloop_port = feastkit.free_port(), feastkit.free_port()
    env = dict(os.environ)
    feast = start([str(args.venv / "bin" / "feast"), "serve", "-h", "127.0.0.1", "-p",
                   str(feast_port), "--workers", str(args.feast_workers)], repo, env)  # fmt: skip
    env.update({
        "MLOOP_HOME": str(home), "MLOOP_SERVE_MODEL": "churn@production", "MLOOP_AUTH": "off",
        "MLOOP_CACHE_TTL_SECONDS": "0", "MLOOP_MONITORING": "false",
        "MLOOP_FEAST_URL": f"http://127.0.0.1:{feast_port}",
        "MLOOP_FEAST_FEATURES": ",".join(feastkit.FEATURES),
    })  # fmt: skip
    server = start([sys.executable, "-m", "uvicorn", "--factory",
                    "mloop.serving.app:create_app_from_env", "--port", str(mloop_port),
                    "--log-level", "warning", "--no-access-log"], ROOT, env)  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{feast_port}/health", "feast serve")
        wait_ready(f"http://127.0.0.1:{mloop_port}/ready", "mloop server")
        rows = frame.set_index("customer_id")[feastkit.COLUMNS]
        features = [{"features": {k: (v.item() if hasattr(v, "item") else v)
                                  for k, v in rows.loc[c].items()}} for c in customers]  # fmt: skip
        entities = [{"entity": {"customer_id": c}} for c in customers]
        url = f"http://127.0.0.1:{mloop_port}/predict"
        drive(url, entities, 2, args.concurrency, work)  # warm up both paths
        drive(url, features, 2, args.concurrency, work)
        seen: dict[str, list[dict]] = {"features": [], "entity": []}
        for _ in range(args.rounds):
            for name, bodies in (("features", features), ("entity", entities)):
                seen[name].append(drive(url, bodies, args.seconds, args.concurrency, work))
    finally:
        stop(server)
        stop(feast)
    results = {
        name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50", "p99")}
        | {"errors": sum(r["errors"] for r in runs)}
        for name, runs in seen.items()
    }
    print(f"wrk -t2 -c{args.concurrency}, {args.rounds} x {args.seconds:g} s per path (medians)")
    for name, r in results.items():
        print(f"  {name:8s} {r['rps']:8.0f} req/s  p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms"
              f"  non-2xx {r['errors']}")  # fmt: skip
    added = {k: results["entity"][k] - results["features"][k] for k in ("p50", "p99")}
    print("  added by the Feast lookup: " + ", ".join(f"{k} {v:+.2f} ms" for k, v in added.items()))


if __name__ == "__main__":
    main()
