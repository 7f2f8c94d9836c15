"""What each control-plane action needs, and the one check that enforces it.

Every state-changing action (and the reads that mirror REST routes) is named here once, with
the role it needs and the REST route that performs it. The REST route declares the same role
(`requires(ACTION.role)`; a test compares this table with the route table) and the CLI checks
its identity with `permit` through `security.acting.authorize`, so a change refused over REST
is refused from the command line too.
"""

from __future__ import annotations

from dataclasses import dataclass

from mloop.errors import PermissionDeniedError
from mloop.security.access import Role
from mloop.security.identities import Identity


@dataclass(frozen=True)
class Action:
    """A control-plane action: what it does, the role it needs, its REST route (if any)."""

    name: str
    role: Role
    route: str | None = None  # "METHOD /path" as declared on the app

    def __str__(self) -> str:
        return self.route or self.name


DEPLOYMENT_READ = Action("read deployments", Role.VIEWER, "GET /deployments")
DEPLOYMENT_APPLY = Action("apply a deployment", Role.ML_LEAD, "POST /deployments")
DEPLOYMENT_SHIFT = Action("shift traffic", Role.ML_LEAD, "POST /deployments/{name}/shift")
DEPLOYMENT_PROMOTE = Action("promote a variant", Role.ML_LEAD, "POST /deployments/{name}/promote")
DEPLOYMENT_ROLLBACK = Action(
    "roll back a deployment", Role.ML_LEAD, "POST /deployments/{name}/rollback"
)
DEPLOYMENT_DELETE = Action("delete a deployment", Role.ML_LEAD, "DELETE /deployments/{name}")
APPROVAL_READ = Action("read approvals", Role.VIEWER, "GET /approvals")
APPROVAL_SUBMIT = Action("submit an approval request", Role.DATA_SCIENTIST, "POST /approvals")
# Approving and rejecting are open to every identity here: the approval service checks that
# the caller holds one of the roles the request still needs.
APPROVAL_APPROVE = Action("approve", Role.VIEWER, "POST /approvals/{request_id}/approve")
APPROVAL_REJECT = Action("reject", Role.VIEWER, "POST /approvals/{request_id}/reject")
AUDIT_VERIFY = Action("verify the audit chain", Role.COMPLIANCE, "GET /audit/verify")
AUDIT_EXPORT = Action("export the audit trail", Role.COMPLIANCE, "GET /audit/export")
MODEL_READ = Action("read the registry", Role.VIEWER)
MODEL_PROMOTE = Action(
    "promote a model version", Role.ML_LEAD, "POST /models/{name}/versions/{version}/promote"
)
MODEL_ROLLBACK = Action("roll back a stage", Role.ML_LEAD, "POST /models/{name}/rollback")
MODEL_ALIAS = Action("set a model alias", Role.ML_LEAD)
MODEL_CARD = Action("write a model card", Role.DATA_SCIENTIST)
JOB_READ = Action("read jobs", Role.PREDICTOR, "GET /jobs")
JOB_CANCEL = Action("cancel a job", Role.PREDICTOR, "DELETE /jobs/{job_id}")
IDENTITY_READ = Action("read identities and keys", Role.VIEWER)
IDENTITY_MANAGE = Action("manage identities, keys and tokens", Role.SECURITY)

ACTIONS = tuple(value for value in dict(globals()).values() if isinstance(value, Action))


def permit(identity: Identity, role: Role, doing: str) -> None:
    """Raise PermissionDeniedError (403, exit 8) unless `identity` holds `role` for `doing`."""
    if not identity.holds(role):
        raise PermissionDeniedError(
            f"identity '{identity.name}' (roles: {', '.join(sorted(identity.roles))}) "
            f"may not {doing}: it needs the role '{role.value}'"
        )
