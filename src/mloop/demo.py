"""Demo traffic: real predictions and deliberately bad requests against a running server.

`mloop demo` uses it to show what a client sees: answers, latencies, and the 4xx each mistake
gets. Rows come from the training data file, without the label and id columns.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson

from mloop.data.io import read_table

LABEL_COLUMNS = ("churn", "customer_id")


@dataclass
class TrafficReport:
    """What the demo traffic got back: counts by kind and status, and client-side latencies."""

    answers: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    bad_examples: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def ok_predictions(self) -> int:
        return self.answers[("single", 200)] + self.answers[("batch rows", 200)]

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else 0.0

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else 0.0

    def rows(self) -> list[tuple[str, int, str]]:
        """(kind, count, answer) lines for the summary table."""
        out = [(kind, n, f"HTTP {status}") for (kind, status), n in sorted(self.answers.items())]
        out += [
            (f"bad: {kind}", 1, f"HTTP {status}: {detail}")
            for kind, status, detail in self.bad_examples
        ]
        return out


def feature_rows(data_path: Path, limit: int) -> list[dict]:
    """Up to `limit` raw feature rows as JSON-ready dicts (NaN becomes null)."""
    frame = read_table(data_path).head(limit)
    frame = frame.drop(columns=[c for c in LABEL_COLUMNS if c in frame.columns])
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def bad_requests(row: dict) -> list[tuple[str, str, bytes]]:
    """(kind, path, body) for each mistake a client commonly makes."""
    first = next(iter(row))
    numeric = next(k for k, v in row.items() if isinstance(v, int | float) and v is not None)
    missing = {k: v for k, v in row.items() if k != first}
    return [
        ("malformed JSON", "/predict", b'{"features": {'),
        ("missing feature", "/predict", orjson.dumps({"features": missing})),
        ("unknown feature", "/predict", orjson.dumps({"features": {**row, "shoe_size": 42}})),
        ("wrong type", "/predict", orjson.dumps({"features": {**row, numeric: "lots"}})),
        (
            "NaN value",
            "/predict",
            orjson.dumps({"features": row}).replace(
                f'"{numeric}":'.encode() + orjson.dumps(row[numeric]),
                f'"{numeric}":NaN'.encode(),
                1,
            ),
        ),
        ("empty batch", "/predict/batch", b'{"instances": []}'),
        ("no features key", "/predict", b'{"rows": []}'),
    ]


def send_demo_traffic(url: str, data_path: Path, *, requests: int = 300) -> TrafficReport:
    """Send `requests` single predictions (8 at a time), a few batches, and the bad requests."""
    rows = feature_rows(data_path, max(requests, 200))
    report = TrafficReport()
    example = data_path.parent / "example.json"
    example.write_bytes(orjson.dumps({"features": rows[0]}, option=orjson.OPT_INDENT_2))
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=30.0, headers=headers) as client:

        def one(row: dict) -> tuple[int, float]:
            response = client.post("/predict", content=orjson.dumps({"features": row}))
            return response.status_code, response.elapsed.total_seconds() * 1000

        with ThreadPoolExecutor(max_workers=8) as pool:
            for status, ms in pool.map(one, (rows[i % len(rows)] for i in range(requests))):
                report.answers[("single", status)] += 1
                report.latencies_ms.append(ms)

        for start in range(0, 200, 50):
            batch = rows[start : start + 50]
            response = client.post("/predict/batch", content=orjson.dumps({"instances": batch}))
            report.answers[("batch rows", response.status_code)] += len(batch)

        for kind, path, body in bad_requests(rows[0]):
            response = client.post(path, content=body)
            detail = response.json().get("detail", "") if response.content else ""
            report.bad_examples.append((kind, response.status_code, str(detail)[:90]))
    return report
