"""The settings handed to Ray actors keep their secrets (no Ray needed)."""

from __future__ import annotations

import pickle

from pydantic import SecretStr

from mloop.jobs.ray import settings_from_payload, settings_payload
from mloop.settings import Settings


def test_secrets_survive_the_pickled_hand_over(tmp_path):
    settings = Settings(
        home=tmp_path, jwt_secret=SecretStr("jwt-s3cret"), audit_secret=SecretStr("audit-s3cret")
    )
    payload = pickle.loads(pickle.dumps(settings_payload(settings)))
    rebuilt = settings_from_payload(payload)
    assert rebuilt.jwt_secret.get_secret_value() == "jwt-s3cret"
    assert rebuilt.audit_secret.get_secret_value() == "audit-s3cret"
    assert rebuilt == settings
    assert "jwt-s3cret" not in repr(payload)  # still masked when printed
