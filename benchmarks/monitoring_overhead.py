"""Serving throughput with live drift monitoring on vs off (target: on >= 90% of off).

Trains a churn model with `mloop.pipeline` (it logs the reference profile), then starts a real
`uvicorn` server for it twice per round, once with MLOOP_MONITORING=false and once with true
(prediction cache off unless `--cache`: the rows repeat, and a cached answer would skip the
model), and drives each for `--seconds` with `--concurrency` connections of `/predict` (one
row) and `/predict/batch` (`--batch` rows). Rounds alternate off/on so drift of the machine affects
both sides alike. Prints requests/s, rows/s and the on/off ratio, and the server's own CPU time
per 1,000 requests (per 1,000 rows for batches), read from /proc: on a machine shared with other
work throughput is noisy, while the server's CPU per request says what monitoring costs it.

    python benchmarks/monitoring_overhead.py --seconds 15 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]


def train(home: Path) -> list[dict]:
    """A registered churn model at alias production, and some rows to send."""
    from mloop.data import generate_churn
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train as run_training
    from mloop.registry.tracking import configure_mlflow
    from mloop.settings import Settings

    settings = Settings(home=home, fallback_model_uris=[])
    configure_mlflow(settings)
    data = home / "churn.csv"
    generate_churn(5000, seed=1).to_csv(data, index=False)
    config = config_from_dict({"evaluate": {"cv_folds": 0}})
    result = run_training(data, config, settings=settings)
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias("churn", "production", result.version)
    frame = generate_churn(2000, seed=2, drift=True).drop(columns=["customer_id", "churn"])
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def start_server(home: Path, port: int, monitoring: bool, cache: bool = False) -> subprocess.Popen:
    env = {
        **os.environ,
        "MLOOP_HOME": str(home),
        "MLOOP_SERVE_MODEL": "churn@production",
        "MLOOP_MONITORING": "true" if monitoring else "false",
        "MLOOP_AUTH": "off",
        # Off by default: the rows repeat, so nearly every answer would come from the cache.
        "MLOOP_CACHE_TTL_SECONDS": "300" if cache else "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "mloop.serving.app:create_app_from_env",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become ready")


async def drive(url: str, bodies: list[dict], seconds: float, concurrency: int) -> int:
    """Requests answered with 200 in `seconds`, from `concurrency` concurrent clients."""
    done = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(offset: int) -> None:
            nonlocal done
            i = offset
            while time.monotonic() < stop:
                answer = await client.post(url, json=bodies[i % len(bodies)])
                done += answer.status_code == 200
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(home: Path, rows: list[dict], args: argparse.Namespace, monitoring: bool, port: int):
    """(req/s, rows/s, server CPU ms per 1,000 requests, per 1,000 batch rows)."""
    server = start_server(home, port, monitoring, args.cache)
    try:
        base = f"http://127.0.0.1:{port}"
        single = [{"features": r} for r in rows]
        batches = [{"instances": rows[i : i + args.batch]} for i in range(0, len(rows), args.batch)]
        asyncio.run(drive(f"{base}/predict", single, 2, args.concurrency))  # warm up
        started = cpu_seconds(server.pid)
        one = asyncio.run(drive(f"{base}/predict", single, args.seconds, args.concurrency))
        middle = cpu_seconds(server.pid)
        many = asyncio.run(drive(f"{base}/predict/batch", batches, args.seconds, 4))
        if monitoring:  # the monitor's queue is counted in the batch phase's CPU
            report = httpx.get(f"{base}/monitor/drift", timeout=60).json()
            assert report.get("status") == "ok", report
        ended = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    per_request = (middle - started) * 1e6 / max(one, 1)
    per_row = (ended - middle) * 1e6 / max(many * args.batch, 1)
    return one / args.seconds, many * args.batch / args.seconds, per_request, per_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cache", action="store_true", help="keep the prediction cache on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        rows = train(home)
        totals = {False: [0.0] * 4, True: [0.0] * 4}
        for round_ in range(args.rounds):
            for monitoring in (False, True):
                result = measure(home, rows, args, monitoring, args.port)
                for i, value in enumerate(result):
                    totals[monitoring][i] += value / args.rounds
                single, batch, cpu_one, cpu_row = result
                state = "on " if monitoring else "off"
                print(f"round {round_ + 1} monitoring {state}: /predict {single:8.1f} req/s   "
                      f"/predict/batch {batch:9.1f} rows/s   server CPU {cpu_one:7.0f} us/request"
                      f" {cpu_row:6.1f} us/batch row", flush=True)  # fmt: skip
    off, on = totals[False], totals[True]
    for name, t in (("off", off), ("on ", on)):
        print(f"mean  {name}: /predict {t[0]:8.1f} req/s   /predict/batch {t[1]:9.1f} rows/s   "
              f"server CPU {t[2]:7.0f} us/request {t[3]:6.1f} us/batch row")  # fmt: skip
    print(f"ratio on/off: /predict {on[0] / off[0]:.3f}   /predict/batch {on[1] / off[1]:.3f}"
          "   (target >= 0.90)")  # fmt: skip
    print(f"server CPU per request off/on: /predict {off[2] / on[2]:.3f}   /predict/batch "
          f"{off[3] / on[3]:.3f}   (the ratio a CPU-bound server would reach)")  # fmt: skip


if __name__ == "__main__":
    main()
