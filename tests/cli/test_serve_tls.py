"""`mloop serve --ssl-certfile --ssl-keyfile`: HTTPS with a certificate the test makes, verified
by the client against it; a missing or mismatched file is a one-line error, exit 2."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mloop.cli.main import app
from tests.cli.test_serve_cli import free_port
from tests.support import modelkit
from tests.support.env import clean_environ
from tests.support.serverproc import interrupt, wait_ready

runner = CliRunner()


def self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def flat(text: str) -> str:
    """The CLI's output with the console's line wrapping undone."""
    return " ".join(text.split())


def test_a_missing_certificate_is_a_one_line_error(mloop_home, tmp_path):
    cert, key = self_signed(tmp_path)
    missing = tmp_path / "nope.pem"
    result = runner.invoke(
        app,
        ["serve", "churn@production", "--ssl-certfile", str(missing), "--ssl-keyfile", str(key)],
    )
    assert result.exit_code == 2
    assert f"TLS certificate file '{missing}' does not exist" in flat(result.output)
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "churn@production", "--ssl-certfile", str(cert)])
    assert result.exit_code == 2
    assert "TLS needs both a certificate and its key" in flat(result.output)


def test_a_key_of_another_certificate_is_refused(mloop_home, tmp_path):
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    result = runner.invoke(
        app,
        ["serve", "churn@production", "--ssl-certfile", str(cert), "--ssl-keyfile", str(other_key)],
    )
    assert result.exit_code == 2
    assert f"cannot use TLS certificate '{cert}'" in flat(result.output)
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_serve_answers_https_verified_against_its_certificate(tmp_path_factory, tmp_path):
    home = tmp_path_factory.mktemp("tls-home")
    modelkit.train_and_register(modelkit.home_settings(home))
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = clean_environ(
        MLOOP_HOME=str(home),
        GIT_PYTHON_REFRESH="quiet",
        MLOOP_SSL_CERTFILE=str(cert),  # the Settings fields, as a deployment sets them
        MLOOP_SSL_KEYFILE=str(key),
    )
    command = [sys.executable, "-c", "from mloop.cli.main import main; main()", "serve"]
    command += ["churn@production", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))  # only this certificate
    try:
        wait_ready(url, proc, verify=trust)
        row = modelkit.json_rows(modelkit.make_frame()[0].head(1))[0]
        answer = httpx.post(f"{url}/predict", json={"features": row}, timeout=30, verify=trust)
        assert answer.status_code == 200
        with pytest.raises(httpx.ConnectError):  # an unknown certificate is not trusted
            httpx.get(f"{url}/health", timeout=5)
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).raise_for_status()
    finally:
        out, err = interrupt(proc)
    assert f"{url}/docs" in out  # the banner shows the https address
    assert "Traceback" not in err, err
