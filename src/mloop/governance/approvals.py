"""Approval requests: submit (gates run now), approve, reject; the last approval promotes.

Rules, each refused with the rule's name: approvals come from distinct, active identities that
hold a required role still unfilled (admin fills any); the requester cannot approve their own
request; one rejection closes it; a closed request takes no more actions. State is in the
platform database; actions on one request are serialized by a row lock (`SELECT ... FOR
UPDATE`, `BEGIN IMMEDIATE` on SQLite). Every action is audited and sent to the webhook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mloop.errors import (
    ConflictError,
    CriteriaNotMetError,
    MloopError,
    NotFoundError,
    PermissionDeniedError,
)
from mloop.errors import ValidationError as InputError
from mloop.governance.audit import audit_log
from mloop.governance.enforce import GovernanceGuard
from mloop.governance.gates import failed, run_gates
from mloop.governance.notify import notify
from mloop.governance.policies import load_policies
from mloop.registry.service import Registry
from mloop.registry.stages import Stage, parse_stage
from mloop.security.identities import Identity, IdentityStore
from mloop.settings import Settings
from mloop.store import open_database
from mloop.store.governance import ApprovalActionRow, ApprovalRequestRow
from mloop.store.models import utcnow

PENDING, APPROVED, PROMOTED, REJECTED = "pending", "approved", "promoted", "rejected"
STATUSES = (PENDING, APPROVED, PROMOTED, REJECTED)


class GatesFailedError(CriteriaNotMetError):
    """A submitted request failed its gates and was rejected (HTTP 422, exit 5)."""


@dataclass
class ApprovalRequest:
    id: int
    model_name: str
    version: str
    stage: str
    requester: str
    status: str
    required_roles: list[str]
    gates: list[dict[str, Any]]
    comment: str | None
    created_at: datetime
    closed_at: datetime | None
    outcome: str | None
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing_roles(self) -> list[str]:
        filled = {a["role"] for a in self.actions if a["decision"] == "approve"}
        return [role for role in self.required_roles if role not in filled]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_name": self.model_name,
            "version": self.version,
            "stage": self.stage,
            "requester": self.requester,
            "status": self.status,
            "required_roles": self.required_roles,
            "missing_roles": self.missing_roles,
            "gates": self.gates,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "outcome": self.outcome,
            "actions": self.actions,
        }


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they were stored as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _record(row: ApprovalRequestRow, actions: list[ApprovalActionRow]) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        stage=row.stage,
        requester=row.requester,
        status=row.status,
        required_roles=list(row.required_roles),
        gates=list(row.gates),
        comment=row.comment,
        created_at=_aware(row.created_at),
        closed_at=_aware(row.closed_at),
        outcome=row.outcome,
        actions=[
            {
                "actor": a.actor,
                "role": a.role,
                "decision": a.decision,
                "comment": a.comment,
                "at": _aware(a.created_at).isoformat(),
            }
            for a in sorted(actions, key=lambda a: a.id)
        ],
    )


MAX_ID = 2**63 - 1  # the database's largest integer: no request has a larger id


def parse_request_id(value: str | int) -> int:
    """The id in `value` (`12` or `#12`); NotFoundError for anything no request can have."""
    text = str(value).strip().lstrip("#")
    # ASCII only: str.isdigit accepts "²", which int() refuses
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
        raise NotFoundError(
            f"approval request {value!r} not found: ids are whole numbers",
            hint="see `mloop approvals list`",
        )
    return int(text)


def known_stage(text: str | Stage) -> Stage:
    """A stage name, or NotFoundError (404) naming the valid ones."""
    try:
        return parse_stage(text)
    except MloopError as exc:
        raise NotFoundError(exc.message, hint=exc.hint) from None


class ApprovalService:
    """The approval workflow over the platform database, the registry and the audit trail."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = open_database(settings)
        self.audit = audit_log(settings)
        self._registry = None

    @property
    def registry(self) -> Registry:
        """The registry this workflow promotes through: governed, with these approvals."""
        if self._registry is None:
            guard = GovernanceGuard(self.settings, lambda: self)
            self._registry = Registry(self.settings, guard=guard)
        return self._registry

    # ------------------------------------------------------------------------------ reads

    def get(self, request_id: str | int) -> ApprovalRequest:
        number = parse_request_id(request_id)
        with self.database.session() as session:
            return self._load(session, number)

    def list(self, status: str | None = None, model: str | None = None) -> list[ApprovalRequest]:
        if status is not None and status not in STATUSES:
            raise InputError(f"unknown status {status!r}: statuses are {', '.join(STATUSES)}")
        with self.database.session() as session:
            query = select(ApprovalRequestRow).order_by(ApprovalRequestRow.id)
            if status:
                query = query.where(ApprovalRequestRow.status == status)
            if model:
                query = query.where(ApprovalRequestRow.model_name == model)
            rows = session.scalars(query).all()
            return [self._load(session, row.id) for row in rows]

    def page(
        self, *, pending: bool, offset: int = 0, limit: int = 25
    ) -> tuple[list[ApprovalRequest], int]:
        """One page of the pending requests (oldest first) or of the closed ones (newest
        first), and how many there are in all: a bounded read however long the history."""
        where = (
            ApprovalRequestRow.status == PENDING
            if pending
            else ApprovalRequestRow.status != PENDING
        )
        order = ApprovalRequestRow.id.asc() if pending else ApprovalRequestRow.id.desc()
        with self.database.session() as session:
            total = session.scalar(
                select(func.count()).select_from(ApprovalRequestRow).where(where)
            )
            query = select(ApprovalRequestRow).where(where).order_by(order)
            rows = session.scalars(query.offset(max(0, offset)).limit(max(0, limit))).all()
            actions: dict[int, list[ApprovalActionRow]] = {row.id: [] for row in rows}
            if rows:
                found = select(ApprovalActionRow).where(ApprovalActionRow.request_id.in_(actions))
                for action in session.scalars(found):
                    actions[action.request_id].append(action)
            return [_record(row, actions[row.id]) for row in rows], total or 0

    def for_version(self, name: str, version: str) -> list[ApprovalRequest]:
        return [r for r in self.list(model=name) if r.version == str(version)]

    # ----------------------------------------------------------------------------- writes

    def submit(
        self,
        name: str,
        version: str | int,
        stage: str | Stage,
        *,
        requester: str,
        comment: str | None = None,
    ) -> ApprovalRequest:
        """Open a request after running its gates; failing gates reject it (GatesFailedError)."""
        target = known_stage(stage)
        policies = load_policies(self.settings)
        policy = policies.for_stage(target)
        if not policy.requires_approval:
            raise ConflictError(
                f"{target.value} needs no approval under the promotion policy"
                + (f" ({policies.source})" if policies.source else " (no policy file)"),
                hint=f"promote directly: mloop models promote {name} {version} --stage "
                f"{target.value}",
            )
        self._active(requester)
        details = self.registry.get_version(f"{name}/{str(version).strip()}")
        if details.stage is target:
            raise ConflictError(
                f"version {details.version} of '{name}' is already in {target.value}"
            )
        with self.database.session() as session:
            open_id = session.scalar(
                select(ApprovalRequestRow.id).where(
                    ApprovalRequestRow.model_name == details.name,
                    ApprovalRequestRow.version == details.version,
                    ApprovalRequestRow.stage == target.value,
                    ApprovalRequestRow.status == PENDING,
                )
            )
        if open_id is not None:
            raise ConflictError(
                f"request {open_id} for {details.name}/{details.version} -> {target.value} is "
                "already pending",
                hint=f"see `mloop approvals show {open_id}`",
            )
        results = run_gates(self.settings, details, policy.gates)
        bad = failed(results)
        with self.database.session() as session:
            row = ApprovalRequestRow(
                model_name=details.name,
                version=details.version,
                stage=target.value,
                requester=requester,
                status=REJECTED if bad else PENDING,
                required_roles=list(policy.approvers),
                gates=[r.to_dict() for r in results],
                comment=comment,
            )
            if bad:
                row.closed_at = utcnow()
                row.outcome = "gates failed: " + "; ".join(f"{r.gate}: {r.detail}" for r in bad)
            session.add(row)
            session.flush()
            request = self._load(session, row.id)
        target_ref = f"{details.name}/{details.version}"
        self.audit.record(
            requester,
            "approval.submit",
            target_ref,
            request=request.id,
            stage=target.value,
            gates=request.gates,
        )
        if bad:
            self.audit.record(
                "mloop", "approval.reject", target_ref, request=request.id, reason=request.outcome
            )
            notify(self.settings, self.audit, "rejected", request)
            raise GatesFailedError(
                f"request {request.id} for {target_ref} -> {target.value} was rejected: "
                + "; ".join(f"{r.gate}: {r.detail}" for r in bad),
                hint=f"see `mloop approvals show {request.id}`",
            )
        notify(self.settings, self.audit, "submitted", request)
        return request

    def approve(
        self, request_id: str | int, *, actor: str, comment: str | None = None
    ) -> ApprovalRequest:
        """Record an approval; the last required one promotes the version."""
        number = parse_request_id(request_id)
        identity = self._active(actor)
        with self._locked() as session:
            row, actions = self._open(session, number, actor, "approve")
            missing = [
                r
                for r in row.required_roles
                if r not in {a.role for a in actions if a.decision == "approve"}
            ]
            role = next((r for r in missing if identity.holds(r)), None)
            if role is None:
                mine = [r for r in row.required_roles if identity.holds(r)]
                if not mine:
                    raise PermissionDeniedError(
                        f"'{actor}' (roles: {', '.join(sorted(identity.roles))}) cannot approve "
                        f"request {number}: it needs {', '.join(row.required_roles)}"
                    )
                by = {a.role: a.actor for a in actions}
                raise ConflictError(
                    f"role already approved: the {mine[0]} approval of request {number} was "
                    f"given by '{by.get(mine[0])}'; it still needs {', '.join(missing)}"
                )
            session.add(
                ApprovalActionRow(
                    request_id=number, actor=actor, role=role, decision="approve", comment=comment
                )
            )
            complete = len(missing) == 1
            if complete:
                row.status = APPROVED
            session.flush()
            request = self._load(session, number)
        ref = f"{request.model_name}/{request.version}"
        self.audit.record(
            actor, "approval.approve", ref, request=number, role=role, comment=comment
        )
        if not complete:
            notify(self.settings, self.audit, "approved_partially", request)
            return request
        return self._promote(request, actor)

    def reject(self, request_id: str | int, *, actor: str, reason: str) -> ApprovalRequest:
        """Close a request; any holder of a required role may reject it."""
        if not reason or not reason.strip():
            raise InputError("a rejection needs a reason", hint='--reason "why"')
        number = parse_request_id(request_id)
        identity = self._active(actor)
        with self._locked() as session:
            row, _actions = self._open(session, number, actor, "reject", own_ok=True)
            if not any(identity.holds(role) for role in row.required_roles):
                raise PermissionDeniedError(
                    f"'{actor}' cannot reject request {number}: it needs one of "
                    f"{', '.join(row.required_roles)}"
                )
            session.add(
                ApprovalActionRow(
                    request_id=number, actor=actor, role=None, decision="reject", comment=reason
                )
            )
            row.status, row.closed_at, row.outcome = REJECTED, utcnow(), f"rejected: {reason}"
            session.flush()
            request = self._load(session, number)
        self.audit.record(
            actor,
            "approval.reject",
            f"{request.model_name}/{request.version}",
            request=number,
            reason=reason,
        )
        notify(self.settings, self.audit, "rejected", request)
        return request

    def check_usable(self, request_id: str | int, name: str, version: str, stage: Stage) -> None:
        """Raise unless the request approves exactly this promotion and is not used yet."""
        request = self.get(request_id)
        wanted = (name, str(version), stage.value)
        if (request.model_name, request.version, request.stage) != wanted:
            raise ConflictError(
                f"request {request.id} approves {request.model_name}/{request.version} -> "
                f"{request.stage}, not {name}/{version} -> {stage.value}"
            )
        if request.status != APPROVED:
            raise ConflictError(
                f"request {request.id} is {request.status}, not approved: it "
                "cannot authorise a promotion"
            )

    # -------------------------------------------------------------------------- internals

    def _promote(self, request: ApprovalRequest, actor: str) -> ApprovalRequest:
        try:
            self.registry.promote(
                request.model_name,
                request.version,
                request.stage,
                actor=actor,
                reason=f"approval request {request.id}",
                approval=request.id,
            )
            status, outcome = PROMOTED, f"promoted to {request.stage}"
        except MloopError as exc:
            status, outcome = APPROVED, f"promotion failed: {exc.message}"
        with self.database.session() as session:
            row = session.get(ApprovalRequestRow, request.id)
            assert row is not None
            row.status, row.outcome = status, outcome
            row.closed_at = utcnow() if status == PROMOTED else None
            session.flush()
            request = self._load(session, request.id)
        notify(self.settings, self.audit, status, request)
        return request

    def _open(
        self, session: Session, number: int, actor: str, verb: str, own_ok: bool = False
    ) -> tuple[ApprovalRequestRow, list[ApprovalActionRow]]:
        row = session.get(ApprovalRequestRow, number)
        if row is None:
            raise NotFoundError(
                f"approval request {number} not found", hint="see `mloop approvals list`"
            )
        if row.status != PENDING:
            raise ConflictError(
                f"request {number} is closed ({row.status}): it takes no more "
                "approvals or rejections"
            )
        if actor == row.requester and not own_ok:
            raise ConflictError(
                f"self-approval: '{actor}' submitted request {number} and "
                "cannot approve it; approvals must come from other identities"
            )
        actions = list(
            session.scalars(
                select(ApprovalActionRow).where(ApprovalActionRow.request_id == number)
            ).all()
        )
        if any(a.actor == actor for a in actions):
            raise ConflictError(
                f"duplicate approval: '{actor}' already acted on request "
                f"{number}; each identity acts once"
            )
        return row, actions

    def _active(self, name: str) -> Identity:
        if not name:
            raise PermissionDeniedError(
                "this action needs an identity", hint="pass --as USER or set MLOOP_USER"
            )
        identity = IdentityStore(self.database).get(name)
        if identity.disabled:
            raise PermissionDeniedError(f"identity '{name}' is disabled")
        return identity

    def _load(self, session: Session, number: int) -> ApprovalRequest:
        row = session.get(ApprovalRequestRow, number)
        if row is None:
            raise NotFoundError(
                f"approval request {number} not found", hint="see `mloop approvals list`"
            )
        actions = session.scalars(
            select(ApprovalActionRow).where(ApprovalActionRow.request_id == number)
        ).all()
        return _record(row, list(actions))

    @contextmanager
    def _locked(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock (SQLite) or locks rows (PG)."""
        with self.database.session() as session:
            if self.database.is_sqlite:
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            else:
                session.connection().exec_driver_sql(
                    "LOCK TABLE approval_actions IN SHARE ROW EXCLUSIVE MODE"
                )
            yield session
