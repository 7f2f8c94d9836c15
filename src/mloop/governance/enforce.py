"""Governance's guard on the registry: may a promotion happen, and the audit record of changes.

The registry holds no policy; it asks its `PromotionGuard` (`mloop.registry.guard`).
`GovernanceGuard` answers from the stage policies (409 when the target stage requires an
approval and none is given, or its gates fail) and appends every registry change (registration,
promotion, rollback) to the audit trail. The approval requests it checks come from `approvals`
(the approval service, which builds its own registry with this guard, so it is passed in, not
imported). `governed.governed_registry(settings)` is the Registry the CLI and the server use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mloop.errors import ConflictError
from mloop.governance.audit import audit_log
from mloop.governance.gates import failed, run_gates
from mloop.governance.policies import load_policies
from mloop.registry.guard import RegistryChange
from mloop.registry.records import VersionDetails
from mloop.registry.stages import Stage
from mloop.settings import Settings


class ApprovalCheck(Protocol):
    """What the guard asks of the approval workflow (`approvals.ApprovalService`)."""

    def check_usable(self, request_id: str | int, name: str, version: str, stage: Stage) -> None:
        """Raise unless the request approves exactly this promotion."""
        ...


class GovernanceGuard:
    """The stage policies decide promotions; the audit trail records every registry change.

    `approvals()` returns the approval workflow, asked only when a promotion names a request.
    """

    def __init__(self, settings: Settings, approvals: Callable[[], ApprovalCheck]) -> None:
        self.settings = settings
        self.approvals = approvals

    def check(
        self,
        name: str,
        version: str,
        stage: Stage,
        approval: int | str | None,
        details: Callable[[], VersionDetails],
    ) -> None:
        """Raise ConflictError unless `stage`'s policy allows this promotion.

        With `approval`, the request must be approved for exactly this version and stage;
        without, the policy must not require one and its gates (run on `details()`) must pass.
        """
        policies = load_policies(self.settings)
        policy = policies.for_stage(stage)
        if approval is not None:
            self.approvals().check_usable(approval, name, version, stage)
            return
        if policy.requires_approval:
            raise ConflictError(
                f"promotion of {name}/{version} to {stage.value} requires an approved request: "
                f"the policy ({policies.source}) requires approvals from "
                f"{', '.join(policy.approvers)}",
                hint=f"mloop approvals submit {name} {version} --stage {stage.value}",
            )
        if not policy.gates.empty:
            bad = failed(run_gates(self.settings, details(), policy.gates))
            if bad:
                raise ConflictError(
                    f"promotion of {name}/{version} to {stage.value} refused by the policy's "
                    "gates: " + "; ".join(f"{r.gate}: {r.detail}" for r in bad)
                )

    def record(self, change: RegistryChange) -> None:
        """Append the change to the audit trail."""
        audit_log(self.settings).record(change.actor, change.action, change.target, **change.detail)
