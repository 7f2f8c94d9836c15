"""The registry under governance: what the CLI, the server and retraining promote through.

Policies are checked before a promotion and every change (registration, promotion, rollback)
is audited; see `enforce.GovernanceGuard`.
"""

from __future__ import annotations

from mloop.governance.approvals import ApprovalService
from mloop.governance.enforce import GovernanceGuard
from mloop.registry.service import Registry
from mloop.settings import Settings


def governed_registry(settings: Settings) -> Registry:
    """A Registry on `settings` whose promotions follow the policies and whose changes are
    audited."""
    return Registry(settings, guard=GovernanceGuard(settings, lambda: ApprovalService(settings)))
