"""Forward alert notifications: a Slack-compatible incoming webhook and e-mail over SMTP.

`Notifier.submit` only queues; a background thread formats one message per Alertmanager group
and sends it to every configured channel, retrying a failed send a few times. Outcomes are
counted in `mloop_alert_notifications_total{channel,outcome}`. The webhook's address is checked
against `MLOOP_WEBHOOK_ALLOW` before each send and the send connects to the checked address
(`security.egress`; a refused one is counted as `refused`, not retried); log lines never show
the webhook URL (its path is the secret).
"""

from __future__ import annotations

import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from mloop.background import BackgroundQueue
from mloop.errors import ValidationError
from mloop.security.egress import post_json
from mloop.settings import Settings

log = logging.getLogger("mloop.monitoring")


def format_text(group: Any) -> tuple[str, str]:
    """(subject, body) for one Alertmanager group."""
    names = sorted({alert.name for alert in group.alerts})
    subject = f"[mloop] {group.status.upper()}: {', '.join(names)} ({len(group.alerts)} alert(s))"
    lines = [subject]
    for alert in group.alerts:
        severity = alert.labels.get("severity", "none")
        summary = alert.annotations.get("summary", "")
        description = alert.annotations.get("description", "")
        extra = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
        where = ", ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        lines.append(
            f"- [{alert.status}] {alert.name} ({severity}) {summary}"
            + (f": {description}" if description else "")
            + (f" [{where}]" if where else "")
        )
    if group.external_url:
        lines.append(f"Alertmanager: {group.external_url}")
    return subject, "\n".join(lines)


class Notifier:
    """Sends queued alert groups to the configured channels from a background thread."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        *,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff = backoff
        self._queue: BackgroundQueue[Any] = self._new_queue()
        self.sent = Counter(
            "mloop_alert_notifications",
            "Alert notifications forwarded, by channel and outcome.",
            ["channel", "outcome"],
            registry=registry,
        )

    def _new_queue(self) -> BackgroundQueue[Any]:
        # linger 0: an alert goes out as soon as it arrives, one group per call
        return BackgroundQueue(
            "mloop-notify", self._send, max_items=1000, batch=1, linger=0, start=False
        )

    def start(self) -> Notifier:
        """Start the sending thread (idempotent; again after `close`)."""
        if self._queue.closed:
            self._queue = self._new_queue()
        self._queue.start()
        return self

    @property
    def channels(self) -> list[str]:
        out = []
        if self.settings.alert_slack_webhook_url:
            out.append("slack")
        if self.settings.alert_smtp_host and self.settings.alert_smtp_to:
            out.append("email")
        return out

    def submit(self, group: Any) -> None:
        """Queue a group for every configured channel (dropped and counted when full)."""
        if not self.channels:
            return
        self.start()
        if not self._queue.put(group):
            self.sent.labels(channel="all", outcome="dropped").inc()

    def flush(self) -> None:
        """Block until every queued notification was sent (or gave up)."""
        self._queue.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread."""
        self._queue.close(timeout)

    def _send(self, groups: list[Any]) -> None:
        for group in groups:
            subject, body = format_text(group)
            for channel in self.channels:
                send = self._slack if channel == "slack" else self._email
                self._with_retries(channel, send, subject, body)

    def _with_retries(self, channel: str, send: Any, subject: str, body: str) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                send(subject, body)
            except ValidationError as exc:  # the allow-list refused the target: no retry
                log.error("%s notification refused: %s", channel, exc.message)
                self.sent.labels(channel=channel, outcome="refused").inc()
                return
            except Exception as exc:  # a channel down must not stop the others
                log.warning("%s notification failed (attempt %d): %s", channel, attempt, _safe(exc))
                if attempt < self.attempts:
                    time.sleep(self.backoff * attempt)
                continue
            self.sent.labels(channel=channel, outcome="sent").inc()
            return
        self.sent.labels(channel=channel, outcome="failed").inc()

    def _slack(self, _subject: str, body: str) -> None:
        url = self.settings.alert_slack_webhook_url
        response = post_json(url, self.settings.webhook_allow, {"text": body}, timeout=10)
        response.raise_for_status()

    def _email(self, subject: str, body: str) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"], message["From"] = subject, s.alert_smtp_from
        message["To"] = ", ".join(s.alert_smtp_to)
        message.set_content(body)
        with smtplib.SMTP(s.alert_smtp_host, s.alert_smtp_port, timeout=10) as smtp:
            if s.alert_smtp_starttls:
                smtp.starttls()
            if s.alert_smtp_user:
                smtp.login(s.alert_smtp_user, s.alert_smtp_password)
            smtp.send_message(message)


def _safe(exc: Exception) -> str:
    """An error as a log line without the URL it names (a webhook URL carries its secret)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
