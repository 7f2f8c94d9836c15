"""The canary controller: the pure decision, and the driver writing canary revisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mloop.deploy.canary import Action, CanaryDriver, Observation, decide
from mloop.deploy.spec import CanaryPolicy, load_spec
from tests.support.deploykit import EXAMPLES

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def canary(**changes) -> CanaryPolicy:
    base = {
        "candidate": "canary",
        "start_percent": 5,
        "step_percent": 10,
        "interval_seconds": 60,
        "max_percent": 25,
        "slo": {"max_error_rate": 0.02, "max_p95_ms": 200, "min_requests": 50},
        "last_step_at": T0,
    }
    return CanaryPolicy.model_validate({**base, **changes})


LATER = T0 + timedelta(seconds=61)
HEALTHY = Observation(requests=100, errors=1, p95_ms=120.0)


@pytest.mark.parametrize(
    ("policy", "seen", "now", "action", "percent", "reason"),
    [
        (canary(), HEALTHY, LATER, Action.STEP, 15, "within the SLO: 5% -> 15%"),
        (canary(percent=20), HEALTHY, LATER, Action.STEP, 25, "20% -> 25%"),
        (canary(percent=25), HEALTHY, LATER, Action.COMPLETE, 25, "within the SLO at 25%"),
        (canary(), HEALTHY, T0 + timedelta(seconds=30), Action.HOLD, 5, "interval not over"),
        (canary(), Observation(10, 0, 50.0), LATER, Action.HOLD, 5, "10 requests, 50 needed"),
        (
            canary(percent=15),
            Observation(100, 5, 120.0),
            T0 + timedelta(seconds=5),  # a breach does not wait for the interval
            Action.ROLLBACK,
            0,
            "error rate 5.00% over 100 requests is above the SLO 2.00%",
        ),
        (
            canary(),
            Observation(100, 0, 450.0),
            LATER,
            Action.ROLLBACK,
            0,
            "p95 latency 450.0 ms is above the SLO 200 ms",
        ),
        (canary(status="rolled_back", percent=0), HEALTHY, LATER, Action.HOLD, 0, "rolled_back"),
    ],
)
def test_decide(policy, seen, now, action, percent, reason):
    decision = decide(policy, seen, now)
    assert (decision.action, decision.percent) == (action, percent)
    assert reason in decision.reason


def test_few_requests_with_errors_are_not_judged():
    # 1 error in 3 requests is 33%, but 3 requests say little: hold until min_requests.
    assert decide(canary(), Observation(3, 1, 90.0), LATER).action is Action.HOLD


def test_driver_steps_completes_and_records_revisions(service):
    spec = load_spec(EXAMPLES / "canary.yaml")
    section = spec.canary.model_copy(update={"max_percent": 25.0})
    service.apply(spec.model_copy(update={"canary": section}), "alice")
    seen = []

    def observe(spec, since):
        seen.append(since)
        return Observation(requests=500, errors=0, p95_ms=40.0)

    driver = CanaryDriver(service, observe)
    assert driver.tick("churn-canary", T0).reason == "canary started"
    assert driver.tick("churn-canary", T0 + timedelta(seconds=10)).action is Action.HOLD
    step = driver.tick("churn-canary", T0 + timedelta(seconds=301))
    assert (step.action, step.percent) == (Action.STEP, 15)
    assert service.status("churn-canary")["variants"][1]["share"] == 15
    assert driver.tick_all(T0 + timedelta(seconds=602))["churn-canary"].percent == 25
    done = driver.tick("churn-canary", T0 + timedelta(seconds=903))
    assert done.action is Action.COMPLETE
    assert driver.tick_all(T0 + timedelta(seconds=1300)) == {}  # completed: not ticked
    history = service.history("churn-canary")
    assert [r.reason for r in history] == ["apply"] + ["canary-step"] * 4
    assert history[-1].spec["canary"]["status"] == "completed"
    assert seen[0] == T0


def test_driver_rolls_back_on_a_breach_and_records_why(service):
    service.apply(load_spec(EXAMPLES / "canary.yaml"), "alice")
    driver = CanaryDriver(service, lambda spec, since: Observation(200, 40, 90.0))
    driver.tick("churn-canary", T0)
    decision = driver.tick("churn-canary", T0 + timedelta(seconds=5))
    assert decision.action is Action.ROLLBACK
    status = service.status("churn-canary")
    assert [v["share"] for v in status["variants"]] == [100, 0]
    assert status["canary"]["status"] == "rolled_back"
    last = service.history("churn-canary")[-1]
    assert last.reason == "canary-rollback" and last.actor == "canary-controller"
    assert "error rate 20.00% over 200 requests" in last.note
    assert driver.tick("churn-canary", T0 + timedelta(hours=1)).action is Action.HOLD


def test_driver_leaves_other_policies_alone(service):
    service.apply(load_spec(EXAMPLES / "ab.yaml"), "alice")
    decision = CanaryDriver(service, lambda s, t: HEALTHY).tick("churn-ab", T0)
    assert decision.action is Action.HOLD and "not a canary" in decision.reason
    assert len(service.history("churn-ab")) == 1


def test_a_human_change_made_meanwhile_wins_over_the_controller(service):
    service.apply(load_spec(EXAMPLES / "canary.yaml"), "alice")

    def observe(spec, since):  # a person shifts the canary while the controller observes
        service.shift("churn-canary", "canary", 50, "bob")
        return Observation(200, 40, 90.0)

    driver = CanaryDriver(service, observe)
    driver.tick("churn-canary", T0)
    assert driver.tick_all(T0 + timedelta(seconds=5)) == {}
    last = service.history("churn-canary")[-1]
    assert (last.reason, last.actor) == ("shift", "bob")
    assert service.status("churn-canary")["canary"]["percent"] == 50
