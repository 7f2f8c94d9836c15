"""Helpers for governance tests: a home with a model trained by `mloop train`, policies,
identities with keys, and a real little webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from mloop.settings import Settings
from tests.support.stores import seed_mlflow

POLICY = {
    "stages": {
        "Production": {
            "approvers": ["ml_lead", "compliance"],
            "gates": {
                "metrics": {"accuracy": 0.6},
                "validation": {"latency_ms": 5000},
                "model_card": True,
                "drift": {"max_psi": 0.25},
            },
        }
    }
}
PARAMS = {
    "data": {"target": "churn", "id_columns": ["customer_id"]},
    "preprocess": {"test_split": 0.25, "random_state": 42},
    "train": {"model": "random_forest", "params": {"n_estimators": 10, "max_depth": 5}},
    "evaluate": {"threshold": 0.5, "cv_folds": 0},
    "register": {"name": "churn", "criteria": {"accuracy": 0.6}},
}
PEOPLE = {
    "alice": ["data_scientist"],
    "bob": ["ml_lead"],
    "carol": ["compliance"],
    "dave": ["ml_lead"],
    "eve": ["viewer"],
    "root": ["admin"],
    "pred": ["predictor"],
}


def settings_at(home: Path, **extra) -> Settings:
    settings = Settings(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        artifact_root=str(home / "artifacts"),
        database_url=f"sqlite:///{home / 'mloop.db'}",
        fallback_model_uris=[],
        **extra,
    )
    settings.ensure_home()
    return seed_mlflow(settings)


def train_version(settings: Settings, data: Path, change: str = "minor", rows: int = 600):
    """Train and register `churn` on `data` (generated when missing) with mloop's pipeline."""
    from mloop.data.churn import generate_churn
    from mloop.data.io import write_table
    from mloop.governance.governed import governed_registry
    from mloop.pipeline.config import config_from_dict
    from mloop.pipeline.train import train

    if not data.exists():
        write_table(generate_churn(rows=rows, seed=3), data)
    registry = governed_registry(settings)  # registrations are audited, as `mloop train`'s are
    return train(data, config_from_dict(PARAMS), change=change, registry=registry)


def write_policy(settings: Settings, policy: dict | None = None) -> Path:
    path = settings.home / "policies.yaml"
    path.write_text(yaml.safe_dump(policy or POLICY))
    return path


def add_people(settings: Settings) -> dict[str, str]:
    """Every identity in PEOPLE, each with an API key; returns name -> key."""
    from mloop.security.identities import IdentityStore
    from mloop.security.keys import KeyStore
    from mloop.store import open_database

    database = open_database(settings)
    keys = {}
    for name, roles in PEOPLE.items():
        if IdentityStore(database).find(name) is None:
            IdentityStore(database).add(name, roles, actor="test")
        keys[name] = KeyStore(database).create(name, actor="test")[0]
    return keys


class Receiver:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def governed_home(settings: Settings, data: Path):
    """Generator behind the `governed` fixtures (see governance/conftest.py)."""
    import mlflow

    from mloop.governance.governed import governed_registry

    govkit_train = train_version
    govkit_train(settings, data)
    governed_registry(settings).promote("churn", "1", "Production", actor="test")
    write_policy(settings)
    keys = add_people(settings)
    govkit_train(settings, data, change="major")
    yield settings, keys
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
