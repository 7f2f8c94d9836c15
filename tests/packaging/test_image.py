"""The image `mloop build-image` makes, built and run for real with podman (or docker).

Built once per module from a model registered in a temporary MLflow store, then run the way a
cluster runs it: read-only root, tmpfs /tmp, a port on 127.0.0.1, no registry reachable (the
container's MLOOP_HOME is its own empty volume). Skipped when neither tool works or the base
image is absent (`.ci/container-setup` makes both), failed under MLOOP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from mloop.model.digest import artifact_digest
from mloop.packaging.builder import builder_works
from tests.support import modelkit
from tests.support.env import clean_environ, reset_mlflow
from tests.support.loopkit import free_port, tool_missing
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.container, pytest.mark.slow]

MLOOP = str(Path(sys.executable).parent / "mloop")
BASE_IMAGE = os.environ.get("MLOOP_TEST_BASE_IMAGE", "localhost/python-base:3.11")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
GRACE = 30  # seconds the engine waits after SIGTERM before SIGKILL (exit 137)


def engine() -> str:
    for name in ("podman", "docker"):
        if shutil.which(name) and builder_works(name):
            return name
    tool_missing("neither podman nor docker works here (run .ci/container-setup)")
    raise AssertionError  # unreachable: tool_missing skips or fails


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(engine, tag, trained model, expected digest): the model image, removed afterwards."""
    tool = engine()
    if run(tool, "image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        tool_missing(f"base image {BASE_IMAGE} is absent (run .ci/container-setup)")
    home = tmp_path_factory.mktemp("image-home")
    settings = modelkit.home_settings(home)
    trained = modelkit.train_and_register(settings)
    reset_mlflow()
    folder = Path(settings.artifact_root)
    digest = artifact_digest(next(p.parent for p in folder.rglob("MLmodel")))
    tag = f"localhost/mloop-test-{uuid.uuid4().hex[:8]}:1"
    command = [MLOOP, "build-image", "churn@production", "-t", tag, "--builder", tool]
    command += ["--base-image", BASE_IMAGE, "--network", "host"]
    if CA_BUNDLE.is_file():
        command += ["--ca-bundle", str(CA_BUNDLE)]
    env = clean_environ(MLOOP_HOME=str(home), GIT_PYTHON_REFRESH="quiet")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    yield tool, tag, trained, digest
    run(tool, "rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def container(built):
    """(engine, name, base URL) of the model image running read-only, ready."""
    tool, tag, _, _ = built
    name = f"mloop-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    run(
        tool, "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-p", f"127.0.0.1:{port}:8000", "-e", "MLOOP_AUTH=off",
        "--stop-timeout", str(GRACE), tag,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url) or _exited(tool, name), "the container to be ready", 300)
        assert not _exited(tool, name), run(tool, "logs", name, check=False).stderr
        yield tool, name, url
    finally:
        run(tool, "rm", "-f", name, check=False)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _exited(tool: str, name: str) -> bool:
    state = run(tool, "inspect", "--format", "{{.State.Status}}", name, check=False).stdout
    return state.strip() in ("exited", "stopped")


def test_labels_name_the_model_version_and_its_content_digest(built):
    tool, tag, trained, digest = built
    image = json.loads(run(tool, "image", "inspect", tag).stdout)[0]
    labels = image["Config"]["Labels"] if "Config" in image else image["Labels"]
    assert labels["io.mloop.model.name"] == "churn"
    assert labels["io.mloop.model.version"] == trained.version
    assert labels["io.mloop.model.digest"] == f"sha256:{digest}"
    assert labels["io.mloop.model.alias"] == "production"
    assert labels["org.opencontainers.image.version"] == trained.version
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["org.opencontainers.image.title"] == "churn"
    assert image["Config"]["User"] == "10001:10001"
    healthcheck = image.get("Healthcheck") or image["Config"].get("Healthcheck")  # podman, docker
    assert healthcheck["Test"][0] == "CMD" and "/health" in healthcheck["Test"][-1]


def test_serves_the_baked_model_as_non_root_on_a_read_only_root(container, built):
    tool, name, url = container
    trained = built[2]
    rows = modelkit.json_rows(trained.frame.head(5))
    expected = trained.pipeline.predict(trained.frame.head(5)).tolist()
    with httpx.Client(base_url=url, timeout=30) as client:
        answers = [client.post("/predict", json={"features": row}) for row in rows]
        bad = client.post("/predict", json={"features": {"tenure": "many"}})
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    assert [a.json()["prediction"] for a in answers] == expected
    assert {(a.json()["model_name"], a.json()["model_version"]) for a in answers} == {
        ("churn", "1")
    }
    assert bad.status_code == 422, bad.text
    status = run(tool, "exec", name, "python", "-c", "print(open('/proc/1/status').read())")
    uids = next(line.split()[1:] for line in status.stdout.splitlines() if line.startswith("Uid:"))
    assert uids[0] == "10001" and "0" not in uids
    write = "open('/opt/mloop/model/tampered', 'w')"
    refused = run(tool, "exec", name, "python", "-c", write, check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    run(tool, "exec", name, "python", "-c", "open('/tmp/scratch', 'w').write('ok')")


def test_sigterm_lets_in_flight_requests_finish_and_exits_zero(container, built):
    """Requests inside the app (headers read, body awaited) when SIGTERM arrives still get
    their answers; then the process exits 0 before the engine's SIGKILL (exit 137)."""
    tool, name, url = container
    port = int(url.rsplit(":", 1)[1])
    rows = modelkit.json_rows(built[2].frame.head(3))
    bodies = [json.dumps({"features": row}).encode() for row in rows]
    sockets = [_start_request(port, body) for body in bodies]
    stopper = threading.Thread(target=run, args=(tool, "stop", "-t", str(GRACE), name))
    stopper.start()
    wait_for(
        lambda: "Shutting down" in _logs(tool, name) or _exited(tool, name),
        "the server to begin shutting down",
        GRACE,
    )
    answers = [_finish_request(sock, body) for sock, body in zip(sockets, bodies, strict=True)]
    stopper.join(GRACE + 30)
    assert [status for status, _ in answers] == [200, 200, 200], answers
    assert all("prediction" in json.loads(body) for _, body in answers)
    code = run(tool, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == "0", _logs(tool, name)


def _logs(tool: str, name: str) -> str:
    done = run(tool, "logs", name, check=False)
    return done.stdout + done.stderr


def _start_request(port: int, body: bytes) -> socket.socket:
    """A POST /predict whose body the server is waiting for (it has sent 100 Continue)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (
        "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before 100 Continue"
        received += chunk
    assert received.startswith(b"HTTP/1.1 100"), received
    return sock


def _finish_request(sock: socket.socket, body: bytes) -> tuple[int, str]:
    with sock:
        sock.sendall(body)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload.decode()
