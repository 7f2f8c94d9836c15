"""What the registry asks before and after a stage change: may it happen, and the audit record.

Kept here so `registry/service.py` needs two calls: `check_promotion` (409 when the target
stage's policy requires an approval and none is given, or its gates fail) and `audit_change`.
"""

from __future__ import annotations

from typing import Any

from mloop.errors import ConflictError
from mloop.registry.stages import Stage
from mloop.settings import Settings


def check_promotion(
    settings: Settings,
    name: str,
    number: str,
    stage: Stage,
    approval: int | str | None,
    details_of: Any,
) -> None:
    """Raise ConflictError unless `stage`'s policy allows this promotion.

    `details_of()` returns the version's VersionDetails (only called when gates must run).
    """
    from mloop.governance.policies import load_policies

    policies = load_policies(settings)
    policy = policies.for_stage(stage)
    if approval is not None:
        from mloop.governance.approvals import ApprovalService

        ApprovalService(settings).check_usable(approval, name, number, stage)
        return
    if policy.requires_approval:
        raise ConflictError(
            f"promotion of {name}/{number} to {stage.value} requires an approved request: the "
            f"policy ({policies.source}) requires approvals from {', '.join(policy.approvers)}",
            hint=f"mloop approvals submit {name} {number} --stage {stage.value}",
        )
    if not policy.gates.empty:
        from mloop.governance.gates import failed, run_gates

        bad = failed(run_gates(settings, details_of(), policy.gates))
        if bad:
            raise ConflictError(
                f"promotion of {name}/{number} to {stage.value} refused by the policy's gates: "
                + "; ".join(f"{r.gate}: {r.detail}" for r in bad)
            )


def audit_change(settings: Settings, actor: str, action: str, target: str, **detail: Any) -> None:
    """Append a registry change (registration, promotion, rollback) to the audit trail."""
    from mloop.governance.audit import audit_log

    audit_log(settings).record(actor, action, target, **detail)
