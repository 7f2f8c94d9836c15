"""The approval workflow on a model trained by mloop: gates computed from the record, the
rules (distinct identities, roles, no self-approval, one rejection closes), the automatic
promotion, webhook notifications, the audit trail and versions' semver and content hash."""

from __future__ import annotations

import shutil

import pytest

from mloop.errors import ConflictError, NotFoundError, PermissionDeniedError
from mloop.governance.approvals import ApprovalService, GatesFailedError
from mloop.governance.audit import audit_log
from mloop.governance.cards import write_card
from mloop.governance.governed import governed_registry
from mloop.registry.service import Registry
from tests.support import govkit


@pytest.fixture(scope="module")
def hook():
    receiver = govkit.Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def env(governed, hook):
    settings, _keys = governed
    settings = settings.model_copy(
        update={"approval_webhook_url": hook.url, "webhook_allow": ["127.0.0.1"]}
    )
    return settings, ApprovalService(settings)


def test_versions_get_semver_and_content_hash(env):
    settings, _ = env
    registry = Registry(settings)
    first, second = registry.get_version("churn/1"), registry.get_version("churn/2")
    assert first.tags["mloop.semver"] == "1.0.0"
    assert second.tags["mloop.semver"] == "2.0.0"
    assert second.tags["mloop.change_type"] == "major"
    assert len(second.tags["mloop.content_sha256"]) == 64
    registered = [r for r in audit_log(settings).rows(action="model.register")]
    assert [r["target"] for r in registered] == ["churn/1", "churn/2"]


def test_promotion_without_approval_is_refused(env):
    settings, _ = env
    with pytest.raises(ConflictError, match="requires an approved request"):
        governed_registry(settings).promote("churn", "2", "Production", actor="bob")


def test_failing_gates_reject_the_request_with_reasons(env, hook):
    settings, service = env
    with pytest.raises(GatesFailedError, match="model_card: churn/2 has no model card") as err:
        service.submit("churn", "2", "Production", requester="alice")
    assert err.value.http_status == 422
    rejected = service.list(status="rejected")[-1]
    gates = {g["gate"]: g for g in rejected.gates}
    assert gates["metric.accuracy"]["passed"] and gates["validation.determinism"]["passed"]
    assert gates["validation.latency"]["passed"] and gates["drift"]["passed"]
    assert not gates["model_card"]["passed"]
    assert hook.events[-1]["event"] == "rejected"


def test_card_then_full_approval_promotes_and_notifies(env, hook, tmp_path):
    settings, service = env
    card, markdown, page = write_card(
        settings, "churn/2", tmp_path / "card", owner="alice", intended_use="retention offers"
    )
    text = markdown.read_text()
    assert (
        "retention offers" in text
        and "training data sha256" in text
        and "<svg" in (page.read_text())
    )
    request = service.submit("churn", "2", "Production", requester="alice", comment="v2")
    assert request.status == "pending" and request.missing_roles == ["ml_lead", "compliance"]
    with pytest.raises(ConflictError, match="already pending"):
        service.submit("churn", "2", "Production", requester="alice")
    with pytest.raises(ConflictError, match="self-approval"):
        service.approve(request.id, actor="alice")
    with pytest.raises(PermissionDeniedError, match="cannot approve"):
        service.approve(request.id, actor="eve")
    partial = service.approve(request.id, actor="bob", comment="metrics fine")
    assert partial.status == "pending" and partial.missing_roles == ["compliance"]
    with pytest.raises(ConflictError, match="duplicate approval"):
        service.approve(request.id, actor="bob")
    with pytest.raises(ConflictError, match="role already approved"):
        service.approve(request.id, actor="dave")
    with pytest.raises(ConflictError, match="is pending, not approved"):
        governed_registry(settings).promote("churn", "2", "Production", approval=request.id)
    done = service.approve(request.id, actor="carol")
    assert done.status == "promoted" and done.outcome == "promoted to Production"
    assert [a["actor"] for a in done.actions] == ["bob", "carol"]
    assert Registry(settings).resolve("churn@production").version == "2"
    events = [e["event"] for e in hook.events]
    assert events[-3:] == ["submitted", "approved_partially", "promoted"]
    with pytest.raises(ConflictError, match="is closed"):
        service.approve(request.id, actor="dave")
    # the state is in the database: a fresh service (a restarted process) sees the same
    again = ApprovalService(settings).get(request.id)
    assert again.to_dict() == done.to_dict()
    promote = [r for r in audit_log(settings).rows(action="model.promote")][-1]
    assert promote["actor"] == "carol" and promote["detail"]["approval"] == request.id
    actions = [r["action"] for r in audit_log(settings).rows() if r["action"].startswith("appr")]
    assert actions[-3:] == ["approval.submit", "approval.approve", "approval.approve"]
    assert audit_log(settings).verify().ok
    card = write_card(settings, "churn/2", tmp_path / "card2")[0]  # owner remembered
    assert [a["actor"] for a in card.approvals] == ["bob", "carol"]
    assert any("Production" in d["change"] for d in card.deployments)


def test_one_rejection_closes(env, hook, tmp_path):
    settings, service = env
    write_card(settings, "churn/1", tmp_path, owner="bob", intended_use="baseline")
    request = service.submit("churn", "1", "Production", requester="alice")
    with pytest.raises(PermissionDeniedError, match="cannot reject"):
        service.reject(request.id, actor="eve", reason="no")
    closed = service.reject(request.id, actor="carol", reason="calibration drift")
    assert closed.status == "rejected" and closed.outcome == "rejected: calibration drift"
    assert hook.events[-1]["event"] == "rejected"
    with pytest.raises(ConflictError, match="is closed"):
        service.approve(request.id, actor="bob")
    with pytest.raises(ConflictError, match="rejected, not approved"):
        governed_registry(settings).promote("churn", "1", "Production", approval=request.id)


def test_bad_input(env):
    _, service = env
    with pytest.raises(NotFoundError, match="registered model 'nope' not found"):
        service.submit("nope", "1", "Production", requester="alice")
    with pytest.raises(NotFoundError, match="version 9 of model 'churn' not found"):
        service.submit("churn", "9", "Production", requester="alice")
    with pytest.raises(NotFoundError, match="unknown stage 'Prod'"):
        service.submit("churn", "2", "Prod", requester="alice")
    with pytest.raises(NotFoundError, match="approval request 4242 not found"):
        service.approve("4242", actor="bob")
    with pytest.raises(NotFoundError, match="ids are whole numbers"):
        service.get("abc")
    with pytest.raises(NotFoundError, match="identity 'ghost' not found"):
        service.approve("1", actor="ghost")
    with pytest.raises(ConflictError, match="needs no approval"):
        service.submit("churn", "2", "Staging", requester="alice")


def test_gates_refuse_when_the_training_data_changed_or_is_gone(governed, tmp_path):
    settings, _ = governed
    home = tmp_path / "home"
    own = govkit.settings_at(home)
    data = tmp_path / "churn.csv"
    govkit.train_version(own, data)
    govkit.write_policy(own, {"stages": {"Staging": {"gates": {"validation": True}}}})
    shutil.copy(data, tmp_path / "kept.csv")
    data.write_text(data.read_text().replace("north", "south", 5))
    with pytest.raises(ConflictError, match="changed since training"):
        governed_registry(own).promote("churn", "1", "Staging")
    data.unlink()
    with pytest.raises(ConflictError, match="is gone"):
        governed_registry(own).promote("churn", "1", "Staging")
    shutil.copy(tmp_path / "kept.csv", data)
    assert governed_registry(own).promote("churn", "1", "Staging").to_stage.value == "Staging"


def test_drift_gate_fails_on_drifted_evaluation_data(tmp_path):
    from mloop.data.churn import generate_churn
    from mloop.data.io import write_table

    own = govkit.settings_at(tmp_path / "home")
    govkit.train_version(own, tmp_path / "churn.csv")
    drifted = write_table(generate_churn(rows=400, seed=9, drift=True), tmp_path / "recent.csv")
    gates = {"drift": {"max_psi": 0.2, "data": str(drifted)}, "metrics": {"accuracy": 0.99}}
    govkit.write_policy(own, {"stages": {"Staging": {"gates": gates}}})
    with pytest.raises(ConflictError) as err:
        governed_registry(own).promote("churn", "1", "Staging")
    assert "drift: max PSI" in err.value.message and "recent.csv" in err.value.message
    assert "metric.accuracy: accuracy = " in err.value.message


def test_an_approval_webhook_to_a_host_not_allowed_is_refused_and_audited(env, hook):
    from mloop.governance.notify import notify

    settings, service = env
    closed = settings.model_copy(update={"webhook_allow": []})  # loopback refused by default
    request = service.get(service.list()[0].id)
    before = len(hook.events)
    assert notify(closed, audit_log(settings), "submitted", request) is False
    assert len(hook.events) == before  # nothing was sent
    failed = [r for r in audit_log(settings).rows(action="approval.notify_failed")][-1]
    assert failed["target"] == f"request {request.id}"
    assert failed["detail"]["error"].startswith("refused:")
    assert notify(settings, audit_log(settings), "submitted", request) is True  # allowed
    assert len(hook.events) == before + 1
