"""Size and start-to-ready time of a model image made by `mloop build-image`.

    python benchmarks/image.py TAG [--runs 5] [--engine podman]

Each run starts the container as tests/packaging runs it (read-only root, tmpfs /tmp, a port
on 127.0.0.1, auth off) and times `run` until /ready answers 200; the median is printed.
Results: docs/benchmarks.md ("Container image").
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import time
import uuid

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_to_ready(engine: str, tag: str, timeout: float = 300.0) -> float:
    name = f"mloop-bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = time.perf_counter()
    subprocess.run(
        [engine, "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
         "-p", f"127.0.0.1:{port}:8000", "-e", "MLOOP_AUTH=off", tag],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        while time.perf_counter() - started < timeout:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"{tag} was not ready within {timeout}s")
    finally:
        subprocess.run([engine, "rm", "-f", name], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="podman")
    args = parser.parse_args()
    inspect = subprocess.run(
        [args.engine, "image", "inspect", args.tag], check=True, capture_output=True, text=True
    )
    size = json.loads(inspect.stdout)[0]["Size"]
    times = [start_to_ready(args.engine, args.tag) for _ in range(args.runs)]
    print(f"image {args.tag}: {size / 1e6:.0f} MB")
    print(
        f"start to ready: median {statistics.median(times):.1f} s over {args.runs} runs "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )


if __name__ == "__main__":
    main()
