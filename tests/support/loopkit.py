"""Helpers for the monitoring-loop tests: a small model with a reference profile, metrics,
and tiny real receivers (HTTP webhook, SMTP) on 127.0.0.1."""

from __future__ import annotations

import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from mloop.registry.profile_store import PROFILE_ARTIFACT
from mloop.settings import Settings
from mloop.stats.profile import ReferenceProfile
from tests.support import modelkit


def train_with_profile(settings: Settings, name: str = "churn") -> modelkit.TrainedModel:
    """modelkit's model, plus the reference profile `mloop train` would log with it."""
    import mlflow

    trained = modelkit.train_and_register(settings, name=name)
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, trained.version).run_id
    frame = trained.frame
    profile = ReferenceProfile.from_frame(
        frame,
        predictions=trained.pipeline.predict(frame),
        probabilities=trained.pipeline.predict_proba(frame),
    )
    client.log_text(run_id, profile.to_json(), PROFILE_ARTIFACT)
    return trained


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text output (labels must all match)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def predict_ids(http: httpx.Client, rows: list[dict]) -> list[str]:
    """Predict `rows` in one batch through `http` (a client with the server as base URL)."""
    answer = http.post("/predict/batch", json={"instances": rows}, timeout=60)
    assert answer.status_code == 200, answer.text
    return [p["prediction_id"] for p in answer.json()["predictions"]]


class WebhookReceiver:
    """A real HTTP server that keeps every JSON body POSTed to it (and each `Host` header).

    `tls`: a server-side SSLContext; the receiver then speaks https on the same port."""

    def __init__(self, status: int = 200, tls: ssl.SSLContext | None = None) -> None:
        received: list[bytes] = []
        hosts: list[str] = []
        self.received = received
        self.hosts = hosts
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's API)
                length = int(self.headers.get("content-length", 0))
                received.append(self.rfile.read(length))
                hosts.append(self.headers.get("host", ""))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """A minimal SMTP server (enough of RFC 5321 for smtplib) that keeps each message."""

    def __init__(self) -> None:
        messages: list[dict] = []
        self.messages = messages

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 test ESMTP\r\n")
                mail: dict = {"to": []}
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode().strip()
                    upper = command.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.wfile.write(b"250 test\r\n")
                    elif upper.startswith("MAIL FROM:"):
                        mail["from"] = command[10:].strip()
                        self.wfile.write(b"250 OK\r\n")
                    elif upper.startswith("RCPT TO:"):
                        mail["to"].append(command[8:].strip())
                        self.wfile.write(b"250 OK\r\n")
                    elif upper == "DATA":
                        self.wfile.write(b"354 end with .\r\n")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk)
                        mail["data"] = b"".join(data).decode()
                        messages.append(mail)
                        mail = {"to": []}
                        self.wfile.write(b"250 queued\r\n")
                    elif upper == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 OK\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def tool_missing(reason: str) -> None:
    """Skip, or fail when MLOOP_REQUIRE_SERVICES=1 (CI installs the tools)."""
    import os

    import pytest

    if os.environ.get("MLOOP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required tool unavailable (MLOOP_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def mloop_process(env: dict[str, str], *args: str, stderr: int = subprocess.DEVNULL):
    """`mloop ARGS` as a child process of this interpreter (stdout discarded)."""
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def serve_process(env: dict[str, str], port: int, stderr: int = subprocess.DEVNULL):
    """`mloop serve churn@production` on 127.0.0.1:`port` as a child process."""
    serve = ("serve", "churn@production", "--port", str(port), "--log-level", "warning")
    return mloop_process(env, *serve, stderr=stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alert_payload(
    alertname: str = "FeatureDriftDetected",
    *,
    status: str = "firing",
    fingerprint: str = "f00d",
    labels: dict | None = None,
    starts_at: str = "2026-11-20T10:00:00Z",
) -> dict:
    """What Alertmanager POSTs to a webhook receiver (payload version 4)."""
    alert_labels = {"alertname": alertname, "severity": "warning", **(labels or {})}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "mloop",
        "groupLabels": {"alertname": alertname},
        "commonLabels": alert_labels,
        "commonAnnotations": {"summary": "Feature drift detected"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {"summary": "Feature drift detected", "description": "score 0.3"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


def train_churn_pipeline(settings: Settings, folder: Path, rows: int = 800):
    """A churn model trained by mloop.pipeline (small and quick), registered at `production`."""
    import mlflow

    from mloop.data import generate_churn
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train

    data = folder / "churn.csv"
    generate_churn(rows, seed=1).to_csv(data, index=False)
    config = config_from_dict(
        {
            "train": {"model": "random_forest", "params": {"n_estimators": 20, "max_depth": 6}},
            "evaluate": {"cv_folds": 0},
            "register": {"name": "churn", "criteria": {"accuracy": 0.5}},
        }
    )
    result = train(data, config, settings=settings)
    assert result.registered, result.failed_criteria
    mlflow.MlflowClient().set_registered_model_alias("churn", "production", result.version)
    return result, data


def churn_rows(rows: int, seed: int = 5, drift: bool = False) -> list[dict]:
    """Raw churn rows as a client sends them (no id, no label)."""
    from mloop.data import generate_churn

    frame = generate_churn(rows, seed=seed, drift=drift).drop(columns=["customer_id", "churn"])
    return modelkit.json_rows(frame)


def busy_server_metrics(settings: Settings, rows: list[dict]) -> str:
    """/metrics of a server (in-process) after predictions, errors, feedback and live drift."""
    from mloop.serving.app import create_app
    from tests.support.apps import in_process

    settings = settings.model_copy(update={"drift_min_rows": 10, "drift_interval_seconds": 0.2})
    with in_process(create_app("churn@production", settings)) as http:
        ids = predict_ids(http, rows)
        http.post("/predict", json={"features": rows[0]})
        http.post("/predict", json={"features": {"nope": 1}})  # invalid
        labels = [{"prediction_id": i, "actual": n % 2} for n, i in enumerate(ids)]
        http.post("/feedback", json={"feedback": labels})
        http.get("/monitor/drift")
        return http.get("/metrics").text
