"""Load for the fault tests: client threads posting /predict, every answer accounted for."""

from __future__ import annotations

import threading

import httpx


class PredictLoad:
    """Client threads posting /predict until stopped; each 200 answer's id, version and worker.

    `fresh=True` opens a new connection per request, so the kernel spreads them over workers
    (a kept-alive connection stays with the worker that accepted it).
    """

    def __init__(self, url: str, rows: list[dict], threads: int = 4, fresh: bool = False) -> None:
        self.url, self.rows, self.fresh = url, rows, fresh
        self.ids: list[str] = []
        self.versions: list[str] = []
        self.workers: list[str] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> PredictLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(60)

    def count(self) -> int:
        with self.lock:
            return len(self.ids)

    def run(self, seed: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=0) if self.fresh else httpx.Limits()
        with httpx.Client(base_url=self.url, timeout=60, limits=limits) as http:
            turn = seed
            while not self.done.is_set():
                turn += 1
                row = self.rows[turn % len(self.rows)]
                try:
                    answer = http.post("/predict", json={"features": row})
                except httpx.TransportError as exc:
                    with self.lock:
                        self.failures.append(f"transport: {type(exc).__name__}: {exc}")
                    continue
                with self.lock:
                    if answer.status_code == 200:
                        body = answer.json()
                        self.ids.append(body["prediction_id"])
                        self.versions.append(body["model_version"])
                        self.workers.append(answer.headers.get("x-mloop-worker", ""))
                    else:
                        self.failures.append(f"{answer.status_code}: {answer.text}")
