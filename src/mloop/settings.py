"""One typed Settings object, read from `MLOOP_*` environment variables once per process.

Paths default under `MLOOP_HOME` (`./.mloop`), so a fresh checkout needs nothing started by
hand: SQLite files for MLflow and for mloop's own state, and a local artifact folder.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "MLOOP_"

# Settings whose default is computed from MLOOP_HOME rather than fixed.
_DERIVED_FROM_HOME = {"tracking_uri", "artifact_root", "database_url"}

# Tracking URI schemes of a tracking server: its experiments' artifacts go where it says.
REMOTE_TRACKING_SCHEMES = ("http://", "https://")


class Settings(BaseSettings):
    """Effective configuration. Every field is an `MLOOP_<FIELD>` environment variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(Path(".mloop"), description="Folder for embedded state and artifacts.")
    tracking_uri: str = Field("", description="MLflow tracking and registry URI.")
    artifact_root: str = Field(
        "",
        description="Where MLflow stores model artifacts (a folder or a URI such as "
        "`s3://bucket/path`); empty with a remote tracking URI: where the server says.",
    )
    s3_endpoint_url: str = Field(
        "",
        description="S3-compatible endpoint (MinIO, moto) for `s3://` artifacts; sets "
        "MLFLOW_S3_ENDPOINT_URL when that is unset. Credentials: the AWS_* variables.",
    )
    database_url: str = Field("", description="SQLAlchemy URL of mloop's platform database.")
    experiment: str = Field("mloop", description="MLflow experiment that `mloop train` logs to.")
    wandb_project: str = Field(
        "", description="W&B project each training run is mirrored to (extra mloop[wandb])."
    )
    host: str = Field("127.0.0.1", description="Address `mloop serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `mloop serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Server worker processes.")
    ssl_certfile: Path | None = Field(
        None, description="PEM certificate (chain) `mloop serve` answers HTTPS with."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of `ssl_certfile`.")
    max_batch_rows: int = Field(1000, ge=1, description="Largest /predict/batch request.")
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body, in bytes."
    )
    fallback_model_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Model URIs tried in order when the served reference cannot be loaded.",
    )
    model_poll_seconds: float = Field(
        10.0,
        ge=0,
        description="How often a server checks the aliases it serves for a new version "
        "(hot swap); 0 turns polling off.",
    )
    model_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Secret of the MLflow registry webhook: a delivery signed with it may "
        "trigger POST /models/refresh without mloop credentials.",
    )
    log_inputs: bool = Field(True, description="Keep each prediction's input in the log.")
    log_level: str = Field("info", description="Server log level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Server and worker log lines: `text`, or `json` (one object a line with "
        "timestamp, level, logger, message, request_id, model, version, latency_ms).",
    )
    log_requests: bool = Field(
        False, description="Log one line per HTTP request (status, latency, model, version)."
    )

    # --- jobs (async predictions, workers, batch scoring) ---
    jobs_backend: Literal["local", "celery"] = Field(
        "local", description="Who runs async jobs: `local` (database-polling workers) or `celery`."
    )
    jobs_embedded_worker: bool = Field(
        True, description="Run a job worker inside `mloop serve` (local backend)."
    )
    jobs_worker_concurrency: int = Field(
        1, ge=1, le=64, description="Jobs one worker process runs at once."
    )
    jobs_lease_seconds: float = Field(
        30.0, gt=0, description="How long a claimed job stays claimed without a heartbeat."
    )
    jobs_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle worker looks for queued jobs."
    )
    jobs_max_attempts: int = Field(3, ge=1, le=100, description="Attempts before a job fails.")
    jobs_retry_backoff_seconds: float = Field(
        2.0, ge=0, description="Wait before the first retry; doubles on each further attempt."
    )
    jobs_max_rows: int = Field(100_000, ge=1, description="Largest `/predict/async` request.")
    jobs_chunk_rows: int = Field(
        1000, ge=1, description="Rows an async prediction job scores between progress updates."
    )
    jobs_max_seconds: float = Field(
        3600.0, gt=0, description="Longest a job may run; Celery's visibility timeout is above it."
    )
    jobs_test_delay_seconds: float = Field(
        0.0, ge=0, description="Test only: sleep this long after each chunk of an async job."
    )
    celery_broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery broker (and result store) for jobs."
    )
    celery_queue: str = Field("mloop-jobs", description="Celery queue that jobs are sent to.")
    batch_chunk_rows: int = Field(
        100_000, ge=1, description="Rows per chunk in `mloop batch-predict`."
    )

    @field_validator("fallback_model_uris", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list in the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def model_post_init(self, __context: object) -> None:
        self.home = self.home.expanduser().resolve()
        if not self.tracking_uri:
            self.tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.artifact_root and not self.remote_tracking:
            self.artifact_root = str(self.home / "artifacts")
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'mloop.db'}"

    @property
    def remote_tracking(self) -> bool:
        """True when the tracking URI is a tracking server (http/https), not a local store."""
        return self.tracking_uri.lower().startswith(REMOTE_TRACKING_SCHEMES)

    def ensure_home(self) -> Path:
        """Create MLOOP_HOME (and the artifact folder when local) and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.artifact_root and "://" not in self.artifact_root:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        return self.home

    def sources(self) -> dict[str, str]:
        """Where each value came from: the environment variable, MLOOP_HOME, or the default."""
        out = {}
        for name in type(self).model_fields:
            var = ENV_PREFIX + name.upper()
            if var in os.environ:
                out[name] = f"env {var}"
            elif name == "artifact_root" and not self.artifact_root:
                out[name] = "the tracking server's (remote MLOOP_TRACKING_URI)"
            elif name in _DERIVED_FROM_HOME:
                out[name] = "derived from MLOOP_HOME"
            else:
                out[name] = "default"
        return out

    # --- governance and security ---
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="API authentication: `auto` (on when the server binds a non-loopback "
        "address), `on` or `off`.",
    )
    jwt_secret: SecretStr = Field(
        SecretStr(""),
        description="HS256 secret for bearer tokens; empty means `$MLOOP_HOME/jwt.key` "
        "(generated with mode 0600 on first use).",
    )
    token_ttl_seconds: int = Field(
        3600, ge=1, le=366 * 86400, description="Lifetime of tokens from `mloop token issue`."
    )
    audit_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 key of the audit chain; empty means `$MLOOP_HOME/audit.key` "
        "(generated with mode 0600 on first use).",
    )
    audit_api_calls: bool = Field(True, description="Write every API call to the audit trail.")
    audit_prediction_calls: bool = Field(
        True,
        description="With audit_api_calls: also audit each answered prediction call (off: only "
        "refused or failed ones; the prediction log keeps every answered row).",
    )
    metrics_public: bool = Field(
        True, description="Leave /metrics open when auth is on (else it needs `viewer`)."
    )
    rate_limit: float = Field(
        0.0, ge=0, description="Requests per second per identity (token bucket); 0 is no limit."
    )
    rate_limit_burst: int = Field(
        0, ge=0, description="Token bucket size; 0 means max(1, 2 x rate_limit)."
    )
    rate_limit_url: str = Field(
        "", description="Redis URL shared by replicas for rate limits; empty is in-process."
    )
    policy_file: str = Field(
        "",
        description="Promotion policies (YAML); empty means `$MLOOP_HOME/policies.yaml` when "
        "it exists, else no stage needs approval.",
    )
    approval_webhook_url: str = Field(
        "", description="URL that approval events are POSTed to as JSON; empty is none."
    )
    user: str = Field("", description="Identity the CLI acts as (like `--as USER`).")
    api_key: SecretStr = Field(SecretStr(""), description="API key the CLI acts with.")
    token: SecretStr = Field(SecretStr(""), description="Bearer token the CLI acts with.")

    # --- monitoring (live drift, feedback, alerts, retraining) ---
    monitoring: bool = Field(True, description="Live drift monitoring of every prediction.")
    drift_window_rows: int = Field(
        10_000, ge=10, description="Live drift window: at most this many recent rows."
    )
    drift_window_seconds: float = Field(
        3600.0, gt=0, description="Live drift window: rows of at most this many seconds ago."
    )
    drift_interval_seconds: float = Field(
        5.0, gt=0, description="How often the live drift gauges are recomputed."
    )
    drift_min_rows: int = Field(
        100, ge=1, description="Rows the live window needs before drift scores are exported."
    )
    quality_window: int = Field(
        1000, ge=1, description="Latest labels per model version in the live quality metrics."
    )
    retrain_data: str = Field(
        "", description="CSV/Parquet that alert-triggered retraining trains on; empty is none."
    )
    retrain_on: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "FeatureDriftDetected",
            "PredictionDriftDetected",
            "ModelQualityDegraded",
        ],
        description="Alert names that start a retraining job (comma-separated or a JSON list).",
    )
    alert_slack_webhook_url: str = Field(
        "", description="Slack-compatible incoming webhook that alerts are forwarded to."
    )
    alert_smtp_host: str = Field("", description="SMTP server that alert e-mails go through.")
    alert_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    alert_smtp_starttls: bool = Field(False, description="Upgrade the SMTP session with STARTTLS.")
    alert_smtp_user: str = Field("", description="SMTP login; empty sends without logging in.")
    alert_smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    alert_smtp_from: str = Field("mloop@localhost", description="Sender of alert e-mails.")
    alert_smtp_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Recipients of alert e-mails (comma-separated)."
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts and CIDRs outgoing webhooks (alerts, approvals) may call "
        "(comma-separated); empty: any public address, never private, loopback or link-local.",
    )

    # --- retention (`mloop retention apply`, and `mloop worker` every interval); 0 keeps all ---
    retention_predictions_days: float = Field(
        0.0, ge=0, description="Delete prediction-log rows older than this many days."
    )
    retention_predictions_rows: int = Field(
        0, ge=0, description="Keep at most this many (newest) prediction-log rows."
    )
    retention_feedback_days: float = Field(
        0.0, ge=0, description="Delete feedback labels older than this many days."
    )
    retention_feedback_rows: int = Field(0, ge=0, description="Keep at most this many labels.")
    retention_audit_days: float = Field(
        0.0, ge=0, description="Prune audit rows older than this (behind a signed checkpoint)."
    )
    retention_audit_rows: int = Field(0, ge=0, description="Keep at most this many audit rows.")
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="How often `mloop worker` applies the retention policies."
    )

    @field_validator("retrain_on", "alert_smtp_to", "webhook_allow", mode="before")
    @classmethod
    def _split_monitoring_lists(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list in the environment."""
        return cls._split_commas(value)

    # --- serving performance (batching, deadlines, cache, streaming) ---
    max_batch_size: int = Field(
        64, ge=1, le=100_000, description="Most rows coalesced into one model call."
    )
    max_wait_ms: float = Field(
        5.0,
        ge=0,
        description="Longest a request waits for a busy model before its batch runs anyway.",
    )
    max_in_flight: int = Field(
        1, ge=1, le=64, description="Model calls one server process runs at once per model."
    )
    request_timeout_ms: float = Field(
        30_000.0,
        ge=0,
        description="Deadline of a prediction request (504 when exceeded); 0 is none. "
        "The X-Request-Timeout-Ms header can shorten it.",
    )
    cache_ttl_seconds: float = Field(
        300.0, ge=0, description="Prediction cache lifetime of an answer; 0 turns the cache off."
    )
    cache_size: int = Field(10_000, ge=1, description="Rows the in-process prediction cache holds.")
    cache_url: str = Field(
        "", description="Redis URL of a shared prediction cache; empty is in-process LRU."
    )
    stream_window: int = Field(
        64, ge=1, le=10_000, description="Lines of one /predict/stream request in flight at once."
    )

    # --- deployments served (traffic routing, canary timer) ---
    deployment_poll_seconds: float = Field(
        5.0, gt=0, description="How often a server re-reads the deployments it routes traffic by."
    )
    canary_tick_seconds: float = Field(
        15.0, gt=0, description="How often a server judges running canaries against their SLO."
    )

    # --- Feast (out of process: its own venv, its feature server over HTTP) ---
    feast_url: str = Field(
        "", description="Feast feature server (`feast serve`) that entity-key requests read."
    )
    feast_features: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Feast features (`view:feature`) an entity row gets."
    )
    feast_feature_service: str = Field(
        "", description="Feast feature service to read instead of MLOOP_FEAST_FEATURES."
    )
    feast_venv: Path = Field(
        Path(".venv-tools/feast"), description="Virtual environment holding Feast (its CLI)."
    )
    feast_repo: Path = Field(Path("."), description="Feast repository (feature_store.yaml).")
    feast_timeout_seconds: float = Field(
        2.0, gt=0, description="Deadline of one call to the Feast feature server."
    )

    @field_validator("feast_features", mode="before")
    @classmethod
    def _split_feast_features(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list in the environment."""
        return cls._split_commas(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and `mloop` subcommands that change the env)."""
    get_settings.cache_clear()
