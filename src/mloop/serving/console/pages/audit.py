"""Audit pages: the chain newest first (filtered by subject and actor, paginated by sequence
number), a verify button and CSV / JSON Lines exports.

Verify reuses `governance.checkpoints.verify` (as GET /audit/verify) and needs the same role
(compliance); exports stream `AuditLog.rows` (as GET /audit/export) with the same role.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mloop.errors import ValidationError
from mloop.governance.audit import AuditLog, audit_log
from mloop.governance.checkpoints import audit_key
from mloop.governance.checkpoints import verify as verify_chain
from mloop.security.permissions import AUDIT_EXPORT, AUDIT_VERIFY
from mloop.serving.console.web import (
    ConsoleUser,
    acting,
    current_user,
    render,
    require_role,
    state,
)
from mloop.store.governance import AuditRow

router = APIRouter()
PAGE = 50
FIELDS = ("seq", "created_at", "actor", "action", "target", "detail")


def audit_page(
    log: AuditLog,
    subject: str = "",
    actor: str = "",
    before: int | None = None,
    limit: int = PAGE,
) -> dict[str, Any]:
    """Up to `limit` rows newest first (seq < `before`), and the cursor of the next page."""
    query = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit + 1)
    if subject:
        query = query.where(AuditRow.target.contains(subject, autoescape=True))
    if actor:
        query = query.where(AuditRow.actor == actor)
    if before is not None:
        query = query.where(AuditRow.seq < before)
    with log.database.session() as session:
        found = session.scalars(query).all()
        rows = [
            {
                "seq": row.seq,
                "created_at": row.created_at,
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "detail": row.detail,
            }
            for row in found[:limit]
        ]
    more = len(found) > limit
    return {"rows": rows, "next_before": rows[-1]["seq"] if more and rows else None}


def parse_before(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise ValidationError(f"'before' must be a row number, not {value!r}")
    return int(value)


def export_rows(log: AuditLog, subject: str, actor: str) -> Iterator[dict[str, Any]]:
    """The chain in order, filtered like the page."""
    for row in log.rows():
        if (not subject or subject in row["target"]) and (not actor or row["actor"] == actor):
            yield row


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FIELDS + ("prev_mac", "mac"))
    for row in rows:
        detail = row["detail"]
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        writer.writerow([row[f] for f in FIELDS[:-1]] + [text, row["prev_mac"], row["mac"]])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:  # the same lines as AuditLog.export (GET /audit/export)
        yield json.dumps(row, sort_keys=True) + "\n"


@router.get("/ui/audit")
async def audit_list(
    request: Request,
    subject: str = "",
    actor: str = "",
    before: str | None = None,
    user: ConsoleUser = Depends(current_user),
) -> Response:
    log = audit_log(state(request).settings)
    subject, actor = subject.strip()[:512], actor.strip()[:128]
    page = await run_in_threadpool(audit_page, log, subject, actor, parse_before(before))
    context = {
        **page,
        "subject": subject,
        "actor": actor,
        "can_verify": user.holds(AUDIT_VERIFY.role),
    }
    return render(request, "audit.html", context)


@router.post("/ui/audit/verify")
async def audit_verify(
    request: Request, user: ConsoleUser = Depends(acting(AUDIT_VERIFY))
) -> Response:
    """Verify the chain (from its newest checkpoint) and show the result or the broken row."""
    settings = state(request).settings
    log = audit_log(settings)
    report = await run_in_threadpool(verify_chain, log.database, audit_key(settings))
    return render(request, "audit_verify.html", {"report": report.to_dict()})


@router.get("/ui/audit/export.{fmt}")
async def audit_export(
    request: Request,
    fmt: str,
    subject: str = "",
    actor: str = "",
    user: ConsoleUser = Depends(current_user),
) -> Response:
    """The (filtered) chain as CSV or JSON Lines; needs the compliance role."""
    require_role(user, AUDIT_EXPORT)
    if fmt not in ("csv", "jsonl"):
        raise ValidationError(f"unknown export format {fmt!r}: use csv or jsonl")
    rows = export_rows(audit_log(state(request).settings), subject.strip(), actor.strip())
    lines = csv_lines(rows) if fmt == "csv" else jsonl_lines(rows)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    headers = {"content-disposition": f'attachment; filename="mloop-audit.{fmt}"'}
    return StreamingResponse(lines, media_type=media, headers=headers)
