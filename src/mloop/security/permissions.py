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
PREDICTION_EXPORT = Action("export the prediction log", Role.COMPLIANCE)
RETENTION_APPLY = Action("apply retention policies", Role.ADMIN)
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

# The other REST routes (reads and the data plane): every protected route is in this table;
# tests/reliability/test_access_wholesale.py fails for one that is not.
APPROVAL_SHOW = Action("read an approval request", Role.VIEWER, "GET /approvals/{request_id}")
DEPLOYMENT_SHOW = Action("read a deployment", Role.VIEWER, "GET /deployments/{name}")
DEPLOYMENT_HISTORY = Action(
    "read a deployment's history", Role.VIEWER, "GET /deployments/{name}/history"
)
DEPLOYMENT_REPORT = Action("read an A/B report", Role.VIEWER, "GET /deployments/{name}/report")
DEPLOYMENT_PREDICT = Action(
    "predict through a deployment", Role.PREDICTOR, "POST /deployments/{name}/predict"
)
DEPLOYMENT_PREDICT_BATCH = Action(
    "predict a batch through a deployment", Role.PREDICTOR, "POST /deployments/{name}/predict/batch"
)
PREDICT = Action("predict", Role.PREDICTOR, "POST /predict")
PREDICT_BATCH = Action("predict a batch", Role.PREDICTOR, "POST /predict/batch")
PREDICT_STREAM = Action("predict a stream", Role.PREDICTOR, "POST /predict/stream")
PREDICT_ASYNC = Action("queue a prediction job", Role.PREDICTOR, "POST /predict/async")
INVOCATIONS = Action("predict (MLflow protocol)", Role.PREDICTOR, "POST /invocations")
V2_METADATA = Action("read server metadata (V2)", Role.VIEWER, "GET /v2")
V2_MODEL = Action("read model metadata (V2)", Role.VIEWER, "GET /v2/models/{name}")
V2_VERSION = Action(
    "read version metadata (V2)", Role.VIEWER, "GET /v2/models/{name}/versions/{version}"
)
V2_INFER = Action("predict (V2)", Role.PREDICTOR, "POST /v2/models/{name}/infer")
V2_VERSION_INFER = Action(
    "predict with a version (V2)", Role.PREDICTOR, "POST /v2/models/{name}/versions/{version}/infer"
)
FEEDBACK = Action("send feedback labels", Role.PREDICTOR, "POST /feedback")
JOB_SHOW = Action("read a job", Role.PREDICTOR, "GET /jobs/{job_id}")
MODEL_INFO = Action("read the served model", Role.VIEWER, "GET /model/info")
MODEL_REFRESH = Action("refresh the served models", Role.ML_LEAD, "POST /models/refresh")
DRIFT_READ = Action("read live drift", Role.VIEWER, "GET /monitor/drift")
DRIFT_CHECK = Action("check a batch for drift", Role.PREDICTOR, "POST /monitor/drift")
QUALITY_READ = Action("read live quality", Role.VIEWER, "GET /monitor/quality")
ALERT_READ = Action("read alerts", Role.VIEWER, "GET /alerts")
ALERT_RECEIVE = Action("receive Alertmanager alerts", Role.ML_LEAD, "POST /alerts/webhook")
RETRAIN_READ = Action("read retraining jobs", Role.VIEWER, "GET /retrain/jobs")

ACTIONS = tuple(value for value in dict(globals()).values() if isinstance(value, Action))


def permit(identity: Identity, role: Role, doing: str) -> None:
    """Raise PermissionDeniedError (403, exit 8) unless `identity` holds `role` for `doing`."""
    if not identity.holds(role):
        raise PermissionDeniedError(
            f"identity '{identity.name}' (roles: {', '.join(sorted(identity.roles))}) "
            f"may not {doing}: it needs the role '{role.value}'"
        )
