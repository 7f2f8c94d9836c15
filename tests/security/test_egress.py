"""Outgoing webhooks: the host is resolved once, every address is checked against the
allow-list, and the send connects to the checked address (no second DNS lookup, so DNS
rebinding cannot move it), keeping the `Host` header and, for https, the certificate's name.

Real receivers on 127.0.0.1 (http and https with a certificate made here), real resolution of
`localhost`."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mloop.errors import ValidationError
from mloop.security.egress import Target, check_target, post_json, send_json
from tests.support.loopkit import WebhookReceiver

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _local_url(receiver: WebhookReceiver, host: str = "localhost") -> str:
    return receiver.url.replace("127.0.0.1", host)


@pytest.mark.parametrize("allow", [[], ["10.0.0.0/8"], ["example.com"]])
def test_a_name_resolving_to_loopback_is_refused_unless_allowed(allow):
    with WebhookReceiver() as receiver, pytest.raises(ValidationError) as refused:
        post_json(_local_url(receiver), allow, {"text": "hi"}, timeout=5)
    assert receiver.received == []  # refused before any connection
    assert "'localhost'" in refused.value.message
    expected = "internal address" if not allow else "is not in MLOOP_WEBHOOK_ALLOW"
    assert expected in refused.value.message


@pytest.mark.parametrize("allow", [["localhost"], ["127.0.0.0/8", "::1/128"]])
def test_a_name_resolving_to_loopback_is_called_when_allowed(allow):
    with WebhookReceiver() as receiver:
        target = check_target(_local_url(receiver), allow)
        answer = post_json(_local_url(receiver), allow, {"text": "hi"}, timeout=5)
    assert LOOPBACK in target.addresses
    assert answer.status_code == 200
    assert [json.loads(body) for body in receiver.received] == [{"text": "hi"}]
    assert receiver.hosts == [f"localhost:{receiver.port}"]  # the name, not the address


def test_the_send_connects_to_the_checked_address_without_resolving_again():
    """A name that can never resolve (RFC 2606 `.invalid`) with its checked address: the call
    arrives, so the sender used the address, not a second lookup that a DNS answer changed
    between check and connect (rebinding) could have sent elsewhere."""
    with WebhookReceiver() as receiver:
        url = _local_url(receiver, "rebound.invalid")
        with pytest.raises(ValidationError, match="does not resolve"):
            check_target(url, ["rebound.invalid"])
        pinned = Target(url, "rebound.invalid", receiver.port, (LOOPBACK,))
        answer = send_json(pinned, {"text": "pinned"}, timeout=5)
    assert answer.status_code == 200
    assert receiver.hosts == [f"rebound.invalid:{receiver.port}"]


def _certificate(name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed certificate for DNS name `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.parametrize(("named", "accepted"), [("localhost", True), ("other.example", False)])
def test_https_checks_the_certificate_against_the_host_name_not_the_address(
    tmp_path, named, accepted
):
    cert, key = _certificate(named)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    with WebhookReceiver(tls=server) as receiver:
        url = _local_url(receiver)
        assert url.startswith("https://localhost:")
        if accepted:
            answer = post_json(url, ["localhost"], {"text": "tls"}, timeout=5, verify=trust)
            assert answer.status_code == 200
        else:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                post_json(url, ["localhost"], {"text": "tls"}, timeout=5, verify=trust)
    assert receiver.hosts == ([f"localhost:{receiver.port}"] if accepted else [])
