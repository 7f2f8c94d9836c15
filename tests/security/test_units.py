"""Small pieces: policy files, semantic versions, content hashes, token claims, key format,
and the secret files' permissions."""

from __future__ import annotations

import os

import pytest

from mloop.errors import AuthenticationError, ConfigError, NotFoundError, ValidationError
from mloop.governance.policies import load_policies
from mloop.registry.semver import bump, check_change, content_sha256
from mloop.security.identities import Identity, parse_roles
from mloop.security.secrets import server_secret
from mloop.security.tokens import issue_token, verify_token
from mloop.settings import Settings

SECRET = b"0123456789abcdef0123456789abcdef"


def test_policy_file_is_validated(tmp_path):
    settings = Settings(home=tmp_path)
    assert not load_policies(settings).for_stage("Production").requires_approval
    path = tmp_path / "policies.yaml"
    path.write_text(
        "stages:\n  production:\n    approvers: [ml_lead]\n    gates:\n"
        "      metrics: {accuracy: 0.8, log_loss: {max: 0.4}}\n      drift: true\n"
    )
    policy = load_policies(settings).for_stage("Production")
    assert policy.approvers == ["ml_lead"] and policy.gates.metrics["log_loss"].max == 0.4
    assert policy.gates.drift is not None and policy.gates.drift.max_psi == 0.2
    path.write_text("stages:\n  Production:\n    approvers: [boss]\n")
    with pytest.raises(ConfigError, match="unknown role 'boss'"):
        load_policies(settings)
    path.write_text("stages:\n  Production:\n    gates: {metrics: {accuracy: {}}}\n")
    with pytest.raises(ConfigError, match="needs `min` or `max`"):
        load_policies(settings)
    path.write_text("stages:\n  None:\n    approvers: [ml_lead]\n")
    with pytest.raises(ConfigError, match="cannot have a policy"):
        load_policies(settings)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_policies(Settings(home=tmp_path, policy_file=str(tmp_path / "missing.yaml")))


def test_semver_bumps():
    assert bump(None, "minor") == "1.0.0"
    assert bump((1, 4, 2), "major") == "2.0.0"
    assert bump((1, 4, 2), "minor") == "1.5.0"
    assert bump((1, 4, 2), "patch") == "1.4.3"
    with pytest.raises(ValidationError, match="unknown change type"):
        check_change("huge")


def test_content_hash_ignores_mlmodel_only(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"weights")
    (tmp_path / "MLmodel").write_text("uuid: 1")
    first = content_sha256(tmp_path)
    (tmp_path / "MLmodel").write_text("uuid: 2")
    assert content_sha256(tmp_path) == first
    (tmp_path / "model.pkl").write_bytes(b"weights2")
    assert content_sha256(tmp_path) != first


def test_token_claims_and_errors():
    token = issue_token("alice", SECRET, 60)
    claims = verify_token(token, SECRET)
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 60
    with pytest.raises(AuthenticationError, match="token expired"):
        verify_token(issue_token("alice", SECRET, 1, now=1000), SECRET)
    with pytest.raises(AuthenticationError, match="invalid token"):
        verify_token("garbage", SECRET)


def test_roles():
    assert parse_roles(["ML_LEAD", "ml_lead", "viewer"]) == ["ml_lead", "viewer"]
    with pytest.raises(ValidationError, match="at least one role"):
        parse_roles([])
    admin = Identity("root", frozenset({"admin"}))
    lead = Identity("bob", frozenset({"ml_lead"}))
    assert admin.holds("compliance") and lead.holds("viewer") and not lead.holds("predictor")


def test_secret_file_refused_when_others_can_read_it(tmp_path):
    from pydantic import SecretStr

    secret = server_secret(SecretStr(""), tmp_path, "jwt.key")
    assert server_secret(SecretStr(""), tmp_path, "jwt.key") == secret
    os.chmod(tmp_path / "jwt.key", 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        server_secret(SecretStr(""), tmp_path, "jwt.key")
