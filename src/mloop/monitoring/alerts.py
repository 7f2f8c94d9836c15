"""Alertmanager's webhook: validate the v4 payload, record each alert, notify, act.

`parse_payload` turns the JSON body into an `AlertGroup` (ValidationError naming the field for
anything else). `AlertHandler.handle` commits one `alerts` row per alert not seen in that
state before, asks the retrain worker for a job when a firing alert is one of
`MLOOP_RETRAIN_ON` (or carries the label `action="retrain"`), and queues the notifications
(Slack-compatible webhook, e-mail), which `notify.Notifier` sends from its own thread so a slow
mail server never delays Alertmanager.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from mloop.errors import ValidationError
from mloop.monitoring.notify import Notifier
from mloop.monitoring.retrain import RetrainWorker
from mloop.settings import Settings
from mloop.store import Database
from mloop.store.monitoring import AlertRecord

log = logging.getLogger("mloop.monitoring")

RETRAIN_ACTION = "retrain"


class Alert(BaseModel):
    """One alert of an Alertmanager notification."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(None, alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field("", max_length=64)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> str:
        """Identity of one firing episode: fingerprint (or labels) and when it started."""
        identity = self.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{identity}@{self.starts_at.isoformat() if self.starts_at else ''}"


class AlertGroup(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    alerts: list[Alert] = Field(min_length=1)


def parse_payload(body: Any) -> AlertGroup:
    """The payload as an AlertGroup; ValidationError naming each wrong field otherwise."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be Alertmanager's webhook JSON object (version 4)")
    try:
        group = AlertGroup.model_validate(body)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValidationError(
            f"not an Alertmanager v4 webhook payload: {problems}",
            hint="see https://prometheus.io/docs/alerting/latest/configuration/#webhook_config",
        ) from None
    for i, alert in enumerate(group.alerts):
        if not alert.name:
            raise ValidationError(f"alerts.{i}.labels: 'alertname' is missing")
    return group


def _aware(value: datetime | None) -> datetime | None:
    """Alertmanager sends endsAt=0001-01-01 for alerts still firing: that means 'none'."""
    return None if value is None or value.year <= 1 else value


class AlertHandler:
    """Records alerts, starts retraining for the configured ones, and queues notifications."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        retrain: RetrainWorker,
        notifier: Notifier,
        *,
        served: Any = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.retrain = retrain
        self.notifier = notifier
        self._served = served or (lambda: None)  # () -> (model_name, model_version) | None

    def handle(self, group: AlertGroup) -> dict[str, Any]:
        """Record, act, notify; the answer lists what was done for each alert."""
        with self.database.session() as session:
            fresh = [self._is_new(session, alert) for alert in group.alerts]
        # Jobs commit in their own transaction, before the alert rows and before the answer.
        actions = [
            self._action(a) if new else None for a, new in zip(group.alerts, fresh, strict=True)
        ]
        with self.database.session() as session:
            session.add_all(
                self._record(alert, group, action)
                for alert, new, action in zip(group.alerts, fresh, actions, strict=True)
                if new
            )
        results = [
            {
                "alertname": alert.name,
                "status": alert.status,
                "fingerprint": alert.fingerprint,
                "recorded": new,
                "action": action,
            }
            for alert, new, action in zip(group.alerts, fresh, actions, strict=True)
        ]
        self.notifier.submit(group)
        return {"received": len(group.alerts), "alerts": results}

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest recorded alerts, newest first."""
        with self.database.session() as session:
            rows = session.scalars(
                select(AlertRecord).order_by(AlertRecord.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "alertname": r.alertname,
                    "status": r.status,
                    "severity": r.severity,
                    "fingerprint": r.fingerprint,
                    "labels": r.labels,
                    "annotations": r.annotations,
                    "starts_at": r.starts_at.isoformat() if r.starts_at else None,
                    "received_at": r.received_at.isoformat(),
                    "action": r.action,
                }
                for r in rows
            ]

    def _is_new(self, session: Any, alert: Alert) -> bool:
        """Alertmanager repeats a group every repeat_interval: record each state change once."""
        fingerprint = alert.fingerprint or alert.key[:64]
        query = select(AlertRecord.id).where(
            AlertRecord.fingerprint == fingerprint,
            AlertRecord.status == alert.status,
            AlertRecord.starts_at == alert.starts_at
            if alert.starts_at
            else AlertRecord.starts_at.is_(None),
        )
        return session.execute(query.limit(1)).first() is None

    def _record(self, alert: Alert, group: AlertGroup, action: str | None) -> AlertRecord:
        return AlertRecord(
            fingerprint=alert.fingerprint or alert.key[:64],
            alertname=alert.name,
            status=alert.status,
            severity=alert.labels.get("severity"),
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=alert.starts_at,
            ends_at=_aware(alert.ends_at),
            group_key=group.group_key,
            action=action,
        )

    def _action(self, alert: Alert) -> str | None:
        """Start retraining for a firing drift/degradation alert; describe what happened."""
        wanted = alert.labels.get("action") == RETRAIN_ACTION or alert.name in (
            self.settings.retrain_on
        )
        if alert.status != "firing" or not wanted:
            return None
        served = self._served() or (None, None)
        name = alert.labels.get("model_name") or served[0]
        version = alert.labels.get("model_version") or served[1]
        if not name or not version:
            return "retrain skipped: the alert names no model and no model is loaded"
        if not self.settings.retrain_data:
            return "retrain skipped: MLOOP_RETRAIN_DATA is not set"
        reason = f"{alert.name}: {alert.annotations.get('summary') or alert.labels}"
        job, created = self.retrain.request(name, version, reason, alert.key)
        if created:
            return f"retrain job {job['id']} queued for {name}/{version}"
        return f"retrain job {job['id']} already {job['status']} for {job['model_name']}"
