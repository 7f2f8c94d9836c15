"""Settings: defaults under MLOOP_HOME, environment overrides, and their reported sources."""

from __future__ import annotations

import pydantic
import pytest

from mloop.settings import Settings, get_settings, reset_settings


def test_defaults_live_under_home(mloop_home):
    home = mloop_home.home
    assert home.is_absolute()
    assert mloop_home.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert mloop_home.database_url == f"sqlite:///{home / 'mloop.db'}"
    assert mloop_home.artifact_root == str(home / "artifacts")
    assert (mloop_home.host, mloop_home.port, mloop_home.max_batch_rows) == (
        "127.0.0.1",
        8000,
        1000,
    )


def test_environment_overrides_and_sources(mloop_home, monkeypatch):
    monkeypatch.setenv("MLOOP_PORT", "9100")
    monkeypatch.setenv("MLOOP_DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("MLOOP_FALLBACK_MODEL_URIS", "models:/a/1, models:/b/2")
    settings = Settings()
    assert settings.port == 9100
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.fallback_model_uris == ["models:/a/1", "models:/b/2"]
    sources = settings.sources()
    assert sources["port"] == "env MLOOP_PORT"
    assert sources["home"] == "env MLOOP_HOME"
    assert sources["tracking_uri"] == "derived from MLOOP_HOME"
    assert sources["workers"] == "default"


def test_invalid_value_names_the_field(mloop_home, monkeypatch):
    monkeypatch.setenv("MLOOP_PORT", "not-a-port")
    with pytest.raises(pydantic.ValidationError, match="port"):
        Settings()


def test_get_settings_is_cached_until_reset(mloop_home, monkeypatch):
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("MLOOP_PORT", "9200")
    assert get_settings().port == first.port
    reset_settings()
    assert get_settings().port == 9200
