"""DeploymentService on a real registry and platform database: every change is a revision,
audited, refused whole when a model does not resolve, and never interleaved with another."""

from __future__ import annotations

import threading

import pytest

from mloop.deploy.service import DeploymentService
from mloop.deploy.spec import load_spec
from mloop.errors import ConflictError, NotFoundError, ValidationError
from mloop.governance.audit import audit_log
from tests.support.deploykit import EXAMPLES


def ab_spec(name="churn-ab", control=90, challenger_model="churn/2"):
    return {
        "name": name,
        "policy": "ab",
        "variants": [
            {"name": "control", "model": "churn@production", "weight": control},
            {"name": "challenger", "model": challenger_model, "weight": 100 - control},
        ],
    }


def test_apply_creates_then_revises_and_status_resolves_versions(service):
    first = service.apply(ab_spec(), "alice")
    assert (first.name, first.revision, first.updated_by) == ("churn-ab", 1, "alice")
    second = service.apply(ab_spec(control=70), "bob")
    assert second.revision == 2
    status = service.status("churn-ab")
    assert status["policy"] == "ab" and status["revision"] == 2
    rows = {v["variant"]: v for v in status["variants"]}
    assert rows["control"]["version"] == "1" and rows["control"]["share"] == 70
    assert rows["challenger"]["version"] == "2" and rows["challenger"]["share"] == 30
    assert rows["control"]["counts"] == {"requests": 0, "errors": 0}
    assert [d.name for d in service.list()] == ["churn-ab"]
    history = service.history("churn-ab")
    assert [(r.revision, r.reason, r.actor) for r in history] == [
        (1, "apply", "alice"),
        (2, "apply", "bob"),
    ]
    assert history[0].resolved["control"] == {
        "model": "churn@production",
        "name": "churn",
        "version": "1",
        "uri": "models:/churn/1",
    }


def test_status_takes_live_counts_from_the_server(service):
    service.apply(ab_spec(), "alice")

    class Live:
        def snapshot(self, deployment):
            assert deployment == "churn-ab"
            return {"challenger": {"requests": 7, "errors": 1}}

    status = service.status("churn-ab", Live())
    rows = {v["variant"]: v for v in status["variants"]}
    assert rows["challenger"]["counts"] == {"requests": 7, "errors": 1}
    assert status["counts_source"] == "server"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("churn@nightly", "model 'churn@nightly' does not resolve: alias 'nightly'"),
        ("churn/9", "model 'churn/9' does not resolve"),
        ("fraud@production", "model 'fraud@production' does not resolve"),
    ],
)
def test_a_model_that_does_not_resolve_changes_nothing(service, model, message):
    service.apply(ab_spec(), "alice")
    with pytest.raises(NotFoundError, match="variant 'challenger'") as caught:
        service.apply(ab_spec(control=50, challenger_model=model), "mallory")
    assert message in caught.value.message
    assert service.records.get("churn-ab").revision == 1
    assert len(service.history("churn-ab")) == 1
    with pytest.raises(NotFoundError):
        service.apply(ab_spec(name="fresh", challenger_model=model), "mallory")
    assert service.records.find("fresh") is None


def test_a_stale_revision_is_rejected(service):
    service.apply(ab_spec(), "alice")
    service.apply(ab_spec(control=80), "bob", expected=1)
    with pytest.raises(ConflictError, match="changed since revision 1 was read"):
        service.apply(ab_spec(control=60), "carol", expected=1)
    with pytest.raises(ConflictError, match="does not exist"):
        service.apply(ab_spec(name="other"), "carol", expected=3)
    assert service.records.get("churn-ab").spec["variants"][0]["weight"] == 80


def test_shift_promote_rollback_and_delete(service):
    service.apply(ab_spec(), "alice")
    shifted = service.shift("churn-ab", "challenger", 50, "alice")
    assert [v["weight"] for v in shifted.spec["variants"]] == [50, 50]
    promoted = service.promote("churn-ab", "lead")
    assert promoted.spec["policy"] == "single"
    assert promoted.spec["variants"] == [{"name": "challenger", "model": "churn/2"}]
    back = service.rollback("churn-ab", "lead")
    assert back.spec["policy"] == "ab" and back.spec["variants"][0]["weight"] == 50
    again = service.rollback("churn-ab", "lead")  # before the shift: the original 90/10
    assert again.spec["variants"][0]["weight"] == 90
    with pytest.raises(ConflictError, match="no earlier revision"):
        service.rollback("churn-ab", "lead")
    reasons = [(r.reason, r.restored_from) for r in service.history("churn-ab")]
    assert reasons == [
        ("apply", None),
        ("shift", None),
        ("promote", None),
        ("rollback", 2),
        ("rollback", 1),
    ]
    assert service.delete("churn-ab", "lead") == 6
    with pytest.raises(NotFoundError, match="deployment 'churn-ab' not found"):
        service.status("churn-ab")
    assert service.history("churn-ab")[-1].reason == "delete"
    recreated = service.apply(ab_spec(), "alice")
    assert recreated.revision == 7  # revision numbers are never reused


def test_every_change_is_audited(service, registry_home):
    service.apply(ab_spec(), "alice")
    service.shift("churn-ab", "challenger", 30, "bob")
    service.promote("churn-ab", "lead")
    service.rollback("churn-ab", "lead")
    service.delete("churn-ab", "lead")
    rows = [r for r in audit_log(registry_home).rows() if r["action"].startswith("deployment.")]
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("deployment.apply", "alice"),
        ("deployment.shift", "bob"),
        ("deployment.promote", "lead"),
        ("deployment.rollback", "lead"),
        ("deployment.delete", "lead"),
    ]
    assert rows[0]["target"] == "deployment:churn-ab"
    assert rows[0]["detail"]["versions"] == {"control": "1", "challenger": "2"}
    assert audit_log(registry_home).verify().ok


def test_policy_specific_shift_and_promote(service):
    canary = service.apply(load_spec(EXAMPLES / "canary.yaml"), "alice")
    moved = service.shift("churn-canary", "canary", 30, "alice")
    assert moved.spec["canary"]["percent"] == 30
    assert service.status("churn-canary")["variants"][1]["share"] == 30
    done = service.promote("churn-canary", "lead")
    assert done.spec["variants"] == [{"name": "canary", "model": "churn@candidate"}]
    assert canary.revision == 1

    service.apply(load_spec(EXAMPLES / "blue_green.yaml"), "alice")
    switched = service.promote("churn-bg", "lead")
    assert switched.spec["blue_green"]["active"] == "green"
    assert service.rollback("churn-bg", "lead").spec["blue_green"]["active"] == "blue"
    with pytest.raises(ValidationError, match="switches all traffic at once"):
        service.shift("churn-bg", "green", 50, "lead")
    assert service.shift("churn-bg", "green", 100, "lead").spec["blue_green"]["active"] == "green"

    service.apply(load_spec(EXAMPLES / "shadow.yaml"), "alice")
    assert service.shift("churn-shadow", "shadow", 10, "a").spec["shadow"]["share"] == 10
    with pytest.raises(ConflictError, match="only the candidate"):
        service.shift("churn-shadow", "live", 10, "a")

    service.apply(load_spec(EXAMPLES / "single.yaml"), "alice")
    with pytest.raises(ConflictError, match="nothing to promote"):
        service.promote("churn", "lead")
    with pytest.raises(ConflictError, match="always gets 100%"):
        service.shift("churn", "main", 50, "lead")
    with pytest.raises(NotFoundError, match="has no variant 'ghost'"):
        service.shift("churn", "ghost", 50, "lead")
    with pytest.raises(ValidationError, match="between 0 and 100"):
        service.shift("churn", "main", 150, "lead")
    assert service.default().name == "churn"


def test_one_default_deployment(service):
    single = load_spec(EXAMPLES / "single.yaml")
    service.apply(single, "alice")
    other = single.model_copy(update={"name": "churn-2"})
    service.apply(other, "alice")
    assert [d.name for d in service.list() if d.is_default] == ["churn-2"]


def _race(service: DeploymentService, writers: int = 6) -> tuple[list, list]:
    """`writers` threads read the same revision, then all write at once."""
    start = threading.Barrier(writers)
    wins, conflicts = [], []

    def write(index: int) -> None:
        read = service.records.get("churn-ab").revision
        start.wait()
        try:
            wins.append(service.apply(ab_spec(control=10 + index), f"w{index}", expected=read))
        except ConflictError:
            conflicts.append(index)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins, conflicts


def _check_no_interleaving(service: DeploymentService) -> None:
    service.apply(ab_spec(), "alice")
    for _ in range(3):
        wins, conflicts = _race(service)
        assert len(wins) == 1 and len(conflicts) == 5
        current = service.records.get("churn-ab")
        assert current.revision == wins[0].revision
        assert current.spec == wins[0].spec  # the winner's spec, whole
    history = service.history("churn-ab")
    assert [r.revision for r in history] == [1, 2, 3, 4]
    for revision in history[1:]:  # each revision is one writer's spec, whole
        index = int(revision.actor.removeprefix("w"))
        assert revision.spec["variants"][0]["weight"] == 10 + index


def test_concurrent_updates_never_interleave_on_sqlite(service):
    _check_no_interleaving(service)


def test_concurrent_updates_never_interleave_on_postgresql(registry_home, postgres_url):
    settings = registry_home.model_copy(update={"database_url": postgres_url})
    _check_no_interleaving(DeploymentService(settings))
