"""Start-up and memory: `mloop --help`, `mloop serve` to /ready against `mlflow models serve` to
/ping, and the resident memory of each serving worker, on one machine, one model, one run.

Model: benchmarks/serving.py's 100-tree forest on 20 features (`bench/1` in a temporary MLflow
store). Each server is started `--rounds` times with the same worker count (2) from a fresh
process, and the time from `Popen` to the first 200 on its readiness route is taken (polled
every 20 ms), with the CPU seconds the server's processes used until then. After the last
round, each server answers a few hundred predictions (every worker warm) and the VmRSS of each
worker process (/proc/<pid>/status) is read. `mloop --help` runs `--rounds` x 3 times; its
median wall time and CPU time (user + system) are printed against the target.

    python benchmarks/startup.py [--rounds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from serving import BIN, _env, _free_port, _mloop_cmd, _records, _register_model, _tree_cpu

HELP_TARGET_S = 0.3  # issue 19: `mloop --help` in at most 0.3 s
SERVE_TARGET = 1 / 3  # mloop serve to /ready in at most a third of mlflow's time to /ping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="starts of each server")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mloop-startup-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args) -> None:
    help_wall, help_cpu = time_command([str(BIN / "mloop"), "--help"], args.rounds * 3)
    print(f"mloop --help: median {help_wall:.3f} s wall, {help_cpu:.3f} s CPU", flush=True)
    env = _env(work)
    os.environ.update(env)  # the model is registered in the temporary store
    print(f"training and registering the model in {work} ...", flush=True)
    _model, frame = _register_model(work)
    rows = _records(frame.head(64))
    servers = {
        "mloop serve": (
            _mloop_cmd("bench/1", args.workers),
            "--port",
            "/ready",
            "/predict",
            [{"features": r} for r in rows],
        ),
        "mlflow models serve": (
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/bench/1"]
            + ["--env-manager", "local", "-h", "127.0.0.1", "--workers", str(args.workers)],
            "-p",
            "/ping",
            "/invocations",
            [{"dataframe_records": [r]} for r in rows],
        ),
    }
    results = {}
    for name, (command, port_flag, probe, path, bodies) in servers.items():
        starts, cpus = [], []
        for round_ in range(args.rounds):
            last = round_ == args.rounds - 1
            with Started(command, port_flag, env, probe) as server:
                starts.append(server.ready_s)
                cpus.append(server.ready_cpu)
                print(f"{name}: ready in {server.ready_s:.2f} s", flush=True)
                if last:
                    memory = server.worker_memory(path, bodies, args.workers)
        results[name] = {
            "ready_s": statistics.median(starts),
            "ready_cpu_s": statistics.median(cpus),
            "worker_rss_mb": memory,
        }
    report(results, help_wall, help_cpu)


def time_command(command: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system) of a command's runs."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


class Started:
    """A server started from a fresh process; `ready_s`: seconds until `probe` answered 200."""

    def __init__(self, command: list[str], port_flag: str, env: dict, probe: str) -> None:
        self.port = _free_port()
        self.command = [*command, port_flag, str(self.port)]
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self.probe = probe

    def __enter__(self) -> Started:
        self.log = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            self._wait(started)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self, started: float) -> None:
        deadline = started + 240
        with httpx.Client(timeout=2) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    self.log.seek(0)
                    raise SystemExit(f"{self.command} exited:\n{self.log.read().decode()[-3000:]}")
                try:
                    if client.get(self.url + self.probe).status_code == 200:
                        self.ready_s = time.perf_counter() - started
                        self.ready_cpu = _tree_cpu(self.proc.pid)
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise SystemExit(f"{self.command} did not start")

    def worker_memory(self, path: str, bodies: list[dict], workers: int) -> list[float]:
        """VmRSS (MB) of each worker process after every worker has answered predictions."""
        deadline = time.monotonic() + 120
        while len(self._workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the last worker finishes loading its model
        with httpx.Client(timeout=30) as client:
            for i in range(400):  # new connections: uvicorn's workers share the socket
                answer = client.post(
                    self.url + path, content=json.dumps(bodies[i % len(bodies)]),
                    headers={"Content-Type": "application/json", "Connection": "close"},
                )  # fmt: skip
                answer.raise_for_status()
        return sorted(_rss_mb(pid) for pid in self._workers())

    def _workers(self) -> list[int]:
        """uvicorn's worker processes under this server (multiprocessing spawns)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child in _children(pid):
                todo.append(child)
                line = _cmdline(child)
                if "spawn_main" in line and "resource_tracker" not in line:
                    found.append(child)
        return found

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(results: dict, help_wall: float, help_cpu: float) -> None:
    print(f"\n{'server':22} {'to ready s':>11} {'CPU s':>7}  worker RSS MB")
    for name, r in results.items():
        rss = ", ".join(f"{m:.0f}" for m in r["worker_rss_mb"])
        print(f"{name:22} {r['ready_s']:11.2f} {r['ready_cpu_s']:7.2f}  {rss}")
    print("\nratios")
    print(
        f"  mloop --help                  {help_wall:8.3f} s wall, {help_cpu:.3f} s CPU"
        f"  (target <= {HELP_TARGET_S} s)"
    )
    ours, peer = results.get("mloop serve"), results.get("mlflow models serve")
    if ours and peer:
        ratio = ours["ready_s"] / peer["ready_s"]
        print(f"  mloop serve / mlflow, to ready {ratio:8.2f}  (target <= {SERVE_TARGET:.2f})")
        cpu = ours["ready_cpu_s"] / peer["ready_cpu_s"]
        print(f"  the same in CPU seconds        {cpu:8.2f}")
        mine, theirs = ours["worker_rss_mb"], peer["worker_rss_mb"]
        if mine and theirs:
            share = statistics.mean(mine) / statistics.mean(theirs)
            print(f"  worker RSS mloop / mlflow      {share:8.2f}")


if __name__ == "__main__":
    main()
