"""The canary controller: a pure step function, and a driver that applies its decisions.

`decide(canary, observation, now)` looks at the candidate's error rate, p95 latency and
request count over the last interval and returns one of:

- `hold`: too early (interval not over) or too few requests to judge;
- `step`: within the SLO, raise the share by `step_percent` (capped at `max_percent`);
- `complete`: within the SLO at `max_percent`, the canary is done;
- `rollback`: an SLO breach, the candidate goes to 0% with the reason recorded.

`CanaryDriver.tick(name)` reads the deployment, asks `observe` for the numbers, and writes a
`canary-step` or `canary-rollback` revision (guarded by the revision it read, so a human change
made meanwhile wins). The serving side calls `tick` on a timer with its live counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from mloop.deploy.spec import CanaryPolicy, DeploymentSpec, Policy
from mloop.errors import ConflictError, NotFoundError

log = logging.getLogger("mloop.deploy.canary")

HOLD, STEP, COMPLETE, ROLLBACK = "hold", "step", "complete", "rollback"


class Action(StrEnum):
    HOLD = HOLD
    STEP = STEP
    COMPLETE = COMPLETE
    ROLLBACK = ROLLBACK


@dataclass(frozen=True)
class Observation:
    """The candidate's numbers over the interval since the last step."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Decision:
    action: Action
    percent: float  # the candidate's share after the decision
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "percent": self.percent, "reason": self.reason}


def decide(canary: CanaryPolicy, seen: Observation, now: datetime) -> Decision:
    """What the controller does now; pure (no clock, no I/O)."""
    current = canary.current_percent
    if canary.status != "running":
        return Decision(Action.HOLD, current, f"canary is {canary.status}")
    slo = canary.slo
    # Breaches are judged as soon as there are enough requests: no waiting out the interval.
    if seen.requests >= max(slo.min_requests, 1):
        if seen.error_rate > slo.max_error_rate:
            return Decision(
                Action.ROLLBACK,
                0.0,
                f"error rate {seen.error_rate:.2%} over {seen.requests} requests is above "
                f"the SLO {slo.max_error_rate:.2%}",
            )
        if seen.p95_ms is not None and seen.p95_ms > slo.max_p95_ms:
            return Decision(
                Action.ROLLBACK,
                0.0,
                f"p95 latency {seen.p95_ms:.1f} ms is above the SLO {slo.max_p95_ms:g} ms",
            )
    due = canary.last_step_at is None or now - _utc(canary.last_step_at) >= timedelta(
        seconds=canary.interval_seconds
    )
    if not due:
        return Decision(Action.HOLD, current, "interval not over")
    if seen.requests < slo.min_requests:
        return Decision(
            Action.HOLD,
            current,
            f"{seen.requests} requests, {slo.min_requests} needed to judge the step",
        )
    if current >= canary.max_percent:
        return Decision(Action.COMPLETE, current, f"within the SLO at {current:g}%")
    following = min(current + canary.step_percent, canary.max_percent)
    return Decision(Action.STEP, following, f"within the SLO: {current:g}% -> {following:g}%")


def advanced(spec: DeploymentSpec, decision: Decision, now: datetime) -> DeploymentSpec:
    """The spec after a step/complete/rollback decision (a HOLD leaves it as it is)."""
    assert spec.canary is not None
    if decision.action is Action.HOLD:
        return spec
    status = {Action.STEP: "running", Action.COMPLETE: "completed"}.get(
        decision.action, "rolled_back"
    )
    canary = spec.canary.model_copy(
        update={
            "percent": decision.percent,
            "status": status,
            "last_step_at": now,
            "reason": decision.reason,
        }
    )
    return spec.model_copy(update={"canary": canary})


Observer = Callable[[DeploymentSpec, datetime | None], Observation]


class CanaryDriver:
    """Applies `decide` to stored canary deployments; `observe(spec, since)` gives the numbers."""

    def __init__(self, service: Any, observe: Observer, actor: str = "canary-controller") -> None:
        self.service = service
        self.observe = observe
        self.actor = actor

    def tick(self, name: str, now: datetime | None = None) -> Decision:
        """Judge deployment `name` once and record the decision (if it changes anything)."""
        now = now or datetime.now(UTC)
        found, spec = self.service.get(name)
        if spec.policy is not Policy.CANARY or spec.canary is None:
            return Decision(Action.HOLD, 0.0, f"deployment '{name}' is not a canary")
        if spec.canary.last_step_at is None and spec.canary.status == "running":
            # First tick: the canary starts now at start_percent (recorded, so intervals count).
            started = spec.model_copy(
                update={
                    "canary": spec.canary.model_copy(
                        update={"percent": spec.canary.current_percent, "last_step_at": now}
                    )
                }
            )
            self.service.record_canary(
                started, found.revision, "canary-step", "canary started", self.actor
            )
            return Decision(Action.HOLD, spec.canary.current_percent, "canary started")
        decision = decide(spec.canary, self.observe(spec, spec.canary.last_step_at), now)
        if decision.action is not Action.HOLD:
            reason = "canary-rollback" if decision.action is Action.ROLLBACK else "canary-step"
            self.service.record_canary(
                advanced(spec, decision, now), found.revision, reason, decision.reason, self.actor
            )
        return decision

    def tick_all(self, now: datetime | None = None) -> dict[str, Decision]:
        """Tick every running canary deployment."""
        out = {}
        for deployment in self.service.list():
            canary = deployment.spec.get("canary") or {}
            if (
                deployment.spec.get("policy") == "canary"
                and canary.get("status", "running") == "running"
            ):
                try:
                    out[deployment.name] = self.tick(deployment.name, now)
                except (ConflictError, NotFoundError) as exc:
                    # Changed or deleted by someone meanwhile: their change wins; next tick
                    # judges the new revision.
                    log.info("canary %s skipped this tick: %s", deployment.name, exc.message)
        return out


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
