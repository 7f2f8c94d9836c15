"""mloop's own services of deploy/compose (api, worker) run under podman-compose with the
compose.local.yaml override against this machine's PostgreSQL and Redis: the API answers
/ready and a prediction, and the worker (the API runs none) finishes an async job. The
`mlflow` service's image and arguments track on PostgreSQL and proxy artifacts (to a local
folder here: no MinIO image can be pulled on this machine) for mloop's compose settings.

The image is built from the repository's Dockerfile as `localhost/mloop:test` (layers cached
across runs; H4's image test builds from the same Dockerfile). Skipped with the reason when
podman, podman-compose or the base image is missing; failed under MLOOP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from mloop.serving.app import create_app
from mloop.settings import Settings
from tests.deploy_files.tools import COMPOSE, ROOT, run, tool
from tests.support import loopkit, modelkit
from tests.support.apps import in_process
from tests.support.env import clean_environ, reset_mlflow
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.container, pytest.mark.slow]

IMAGE = "localhost/mloop:test"
BASE_IMAGE = os.environ.get("MLOOP_TEST_BASE_IMAGE", "localhost/python-base:3.11")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL = COMPOSE.parent / "compose.local.yaml"


def podman() -> str:
    path = shutil.which("podman")
    if path is None or run(path, "info", timeout=60).returncode != 0:
        loopkit.tool_missing("podman does not work here: run .ci/container-setup")
    return path


@pytest.fixture(scope="module")
def image() -> str:
    """`localhost/mloop:test`, built from the repository's Dockerfile (cached layers reused)."""
    engine = podman()
    if run(engine, "image", "exists", BASE_IMAGE).returncode != 0:
        loopkit.tool_missing(f"base image {BASE_IMAGE} is absent: run .ci/container-setup")
    command = [engine, "build", "--format", "docker", "--network", "host"]
    if CA_BUNDLE.is_file():
        command += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    command += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE, str(ROOT)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return IMAGE


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """An MLflow store (sqlite + artifacts) with churn@production, readable by the image's user."""
    home = tmp_path_factory.mktemp("compose-local") / "store"
    modelkit.train_and_register(modelkit.home_settings(home))
    reset_mlflow()
    for path in [home, *home.rglob("*")]:  # the container runs as uid 10001
        path.chmod(0o777 if path.is_dir() else 0o666)
    for parent in home.parents:  # pytest's temp folders are 0700
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    return home


@pytest.fixture
def stack(image, store, postgres_url, redis_url):
    """api and worker up under podman-compose (own project name); taken down with volumes."""
    compose = tool("podman-compose", "pip install podman-compose")
    port = loopkit.free_port()
    project = f"mloop-test-{uuid.uuid4().hex[:8]}"
    env = clean_environ(
        MLOOP_IMAGE=image,
        MLOOP_PORT=str(port),
        MLOOP_LOCAL_STORE=str(store),
        MLOOP_LOCAL_DATABASE_URL=postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        MLOOP_LOCAL_REDIS_URL=redis_url,
    )
    base = [compose, "-p", project, "-f", str(COMPOSE), "-f", str(LOCAL)]

    def compose_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    up = compose_run("up", "-d", "--no-build", "--no-deps", "api", "worker")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"http://127.0.0.1:{port}", compose_run
    finally:
        down = compose_run("down", "-v", "-t", "20")
        assert down.returncode == 0, down.stdout + down.stderr


def test_api_and_worker_from_the_compose_file_serve_on_local_postgres_and_redis(stack):
    url, compose_run = stack

    def ready() -> httpx.Response | None:
        try:
            answer = httpx.get(f"{url}/ready", timeout=5)
        except httpx.TransportError:
            return None
        return answer if answer.status_code == 200 else None

    try:
        answer = wait_for(ready, "the api service's /ready", timeout=300, every=1)
    except BaseException:
        print(compose_run("logs", "api").stdout[-6000:])
        raise
    assert answer.json()["model_name"] == "churn"
    rows = modelkit.json_rows(modelkit.make_frame()[0].head(5))
    predicted = httpx.post(f"{url}/predict", json={"features": rows[0]}, timeout=60)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["model_version"] == "1"
    # The API runs no embedded worker (compose.yaml): only the worker service can finish this.
    queued = httpx.post(f"{url}/predict/async", json={"instances": rows}, timeout=60)
    assert queued.status_code == 202, queued.text

    def finished() -> dict | None:
        job = httpx.get(f"{url}{queued.json()['status_url']}", timeout=10).json()
        return job if job["status"] in {"succeeded", "failed"} else None

    try:
        job = wait_for(finished, "the worker service to run the async job", timeout=180, every=1)
    except BaseException:
        print(compose_run("logs", "worker").stdout[-6000:])
        raise
    assert job["status"] == "succeeded", job
    assert job["result"]["total_count"] == 5
    listed = compose_run("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert "worker" in listed and "api" in listed, listed


@pytest.fixture
def mlflow_server(image, postgres_url, tmp_path):
    """The compose file's `mlflow` service (its image and arguments) on this machine's
    PostgreSQL, artifacts in a local folder instead of MinIO: (tracking URL, artifact folder)."""
    engine = podman()
    tag = "localhost/mloop-mlflow:test"
    command = [engine, "build", "--format", "docker", "--network", "host"]
    if CA_BUNDLE.is_file():
        command += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    command += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag]
    command += ["-f", str(COMPOSE.parent / "mlflow.Dockerfile"), str(COMPOSE.parent)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    port = loopkit.free_port()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    artifacts.chmod(0o777)
    service = yaml.safe_load(COMPOSE.read_text())["services"]["mlflow"]
    args = []
    for arg in service["command"]:
        key = arg.split("=", 1)[0]
        if key == "--backend-store-uri":
            arg = f"{key}={postgres_url.replace('postgresql://', 'postgresql+psycopg://')}"
        elif key == "--artifacts-destination":
            arg = f"{key}={artifacts}"
        elif key == "--host":
            arg = f"{key}=127.0.0.1"
        elif key == "--port":
            arg = f"{key}={port}"
        elif key == "--allowed-hosts":
            arg = f"{arg},127.0.0.1:{port}"
        args.append(arg)
    name = f"mloop-test-mlflow-{uuid.uuid4().hex[:8]}"
    started = run(engine, "run", "-d", "--name", name, "--network", "host",
                  "-v", f"{artifacts}:{artifacts}", tag, *args)  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, "the mlflow service's /health", timeout=180, every=1)
        yield url, artifacts
    finally:
        run(engine, "rm", "-f", name)


def test_models_trained_through_the_mlflow_service_land_in_its_artifact_store(
    mlflow_server, tmp_path
):
    """mloop's compose settings (tracking on the server, MLOOP_ARTIFACT_ROOT proxied through
    it) register and load a model; the files land in the server's artifact destination."""
    url, artifacts = mlflow_server
    api = yaml.safe_load(COMPOSE.read_text())["services"]["api"]
    root = api["environment"]["MLOOP_ARTIFACT_ROOT"]
    assert root.startswith("mlflow-artifacts:")
    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=url,
        artifact_root=root,
        database_url=f"sqlite:///{tmp_path / 'mloop.db'}",
    )
    settings.ensure_home()
    try:
        loopkit.train_churn_pipeline(settings, tmp_path)
        with in_process(create_app("churn@production", settings)) as http:
            answer = http.post("/predict", json={"features": loopkit.churn_rows(1)[0]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1"
    finally:
        reset_mlflow()
    assert list(artifacts.rglob("MLmodel")), "no model files in the artifact destination"
