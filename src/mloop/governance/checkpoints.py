"""Signed checkpoints of the audit chain's pruned prefix, and verification that starts there.

Retention deletes the oldest audit rows; without more, `verify` would report them deleted.
Before deleting rows 1..N, `prune_audit` re-verifies them and stores a checkpoint: the last
pruned sequence number and MAC, how many rows, their time range, and the previous
checkpoint's MAC, all signed with the audit key (HMAC-SHA256, as the chain's rows). `verify`
checks every checkpoint's signature and their order, then walks the remaining rows from the
newest checkpoint's MAC, so editing a remaining row, deleting or forging a checkpoint (without
the key) or deleting rows past it are all caught; the report says which range each part vouches for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from mloop.errors import ConflictError
from mloop.governance.audit import GENESIS, ChainBreak, check_head, now_iso, walk_chain
from mloop.security.secrets import AUDIT_KEY_FILE, server_secret
from mloop.settings import Settings
from mloop.store import Database
from mloop.store.checkpoints import AuditCheckpointRow
from mloop.store.governance import AuditHeadRow, AuditRow

_CHUNK = 2000
_DOMAIN = "mloop.audit.checkpoint.v1"


@dataclass(frozen=True)
class Checkpoint:
    """Rows 1..last_seq were verified and pruned; `mac` signs the other fields."""

    id: int
    created_at: str
    last_seq: int
    last_mac: str
    pruned: int
    first_at: str
    last_at: str
    prev_mac: str
    mac: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def checkpoint_mac(
    secret: bytes,
    created_at: str,
    last_seq: int,
    last_mac: str,
    pruned: int,
    first_at: str,
    last_at: str,
    prev_mac: str,
) -> str:
    """HMAC-SHA256 of a checkpoint's fields (domain-separated from the chain's row MACs)."""
    content = [_DOMAIN, created_at, last_seq, last_mac, pruned, first_at, last_at, prev_mac]
    payload = json.dumps(content, separators=(",", ":")).encode()
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The chain checked from its newest checkpoint; `seq`/`kind` name the first break."""

    ok: bool
    rows: int  # rows present and verified
    head_mac: str
    seq: int | None = None
    kind: str | None = None  # modified | deleted | reordered | checkpoint | unexpected
    message: str = "the audit chain is intact"
    checkpoint: Checkpoint | None = None
    first_row: int | None = None  # the range the remaining rows vouch for
    last_row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_mac": self.head_mac,
            "seq": self.seq,
            "kind": self.kind,
            "message": self.message,
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
            "rows_range": [self.first_row, self.last_row] if self.rows else None,
        }


def _checkpoints(conn: Connection, secret: bytes) -> list[Checkpoint]:
    """Every checkpoint, oldest first, each signature and link checked (else _Broken)."""
    rows = conn.execute(select(AuditCheckpointRow).order_by(AuditCheckpointRow.id)).all()
    out: list[Checkpoint] = []
    prev_mac, prev_seq = GENESIS, 0
    for row in rows:
        point = Checkpoint(
            row.id,
            row.created_at,
            row.last_seq,
            row.last_mac,
            row.pruned,
            row.first_at,
            row.last_at,
            row.prev_mac,
            row.mac,
        )
        own = checkpoint_mac(
            secret,
            point.created_at,
            point.last_seq,
            point.last_mac,
            point.pruned,
            point.first_at,
            point.last_at,
            point.prev_mac,
        )
        if not hmac.compare_digest(own, point.mac):
            raise ChainBreak(
                point.last_seq,
                "checkpoint",
                f"checkpoint {point.id} (rows 1 to {point.last_seq}) is forged or "
                "modified: its signature does not match its content",
            )
        if point.prev_mac != prev_mac or point.last_seq <= prev_seq:
            raise ChainBreak(
                point.last_seq,
                "checkpoint",
                f"checkpoint {point.id} does not follow the checkpoint before it: "
                "a checkpoint was deleted or replaced",
            )
        out.append(point)
        prev_mac, prev_seq = point.mac, point.last_seq
    return out


def verify(
    database: Database, secret: bytes, on_progress: Callable[[int, int], None] | None = None
) -> ChainReport:
    """Verify checkpoints, then the rows after the newest one, then the chain head."""
    with database.engine.connect() as conn:
        head = conn.execute(
            select(AuditHeadRow.seq, AuditHeadRow.mac).where(AuditHeadRow.id == 1)
        ).one()
        point: Checkpoint | None = None
        try:
            points = _checkpoints(conn, secret)
            point = points[-1] if points else None
            start, prev = (point.last_seq, point.last_mac) if point else (0, GENESIS)
            stale = conn.scalar(select(func.count()).where(AuditRow.seq <= start))
            if stale:
                raise ChainBreak(
                    start,
                    "unexpected",
                    f"{stale} row(s) at or before row {start} exist although "
                    f"checkpoint {point.id if point else '?'} pruned them",
                )
            progress = (lambda done: on_progress(done, head.seq - start)) if on_progress else None
            checked, last_mac, _ = walk_chain(conn, secret, start, prev, on_progress=progress)
            end = start + checked
            check_head(head.seq, head.mac, end, last_mac)
        except ChainBreak as broken:
            return ChainReport(
                False, 0, head.mac, broken.seq, broken.kind, str(broken), checkpoint=point
            )
    parts = []
    if point is not None:
        parts.append(
            f"checkpoint {point.id} (signature valid) vouches for rows 1 to "
            f"{point.last_seq} ({point.first_at} to {point.last_at}), pruned "
            f"{point.created_at}"
        )
    if checked:
        parts.append(f"rows {start + 1} to {end} verified one by one")
    message = "the audit chain is intact: " + ("; ".join(parts) if parts else "0 rows")
    return ChainReport(
        True,
        checked,
        head.mac,
        message=message,
        checkpoint=point,
        first_row=start + 1 if checked else None,
        last_row=end if checked else None,
    )


def _lock_head(database: Database, conn: Connection) -> Any:
    """Take the chain lock appenders take (see governance/audit.py) and return the head."""
    query = select(AuditHeadRow.seq, AuditHeadRow.mac).where(AuditHeadRow.id == 1)
    if database.is_sqlite:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        query = query.with_for_update()
    return conn.execute(query).one()


def prune_audit(database: Database, secret: bytes, upto: int) -> Checkpoint | None:
    """Verify rows up to `upto`, sign a checkpoint of them and delete them, in one transaction.

    Refuses (ConflictError, 409) when those rows do not verify: a broken chain is evidence
    and is never pruned. Returns None when nothing is left to prune.
    """
    with database.engine.connect() as conn:
        head = _lock_head(database, conn)
        upto = min(upto, head.seq)
        try:
            points = _checkpoints(conn, secret)
            point = points[-1] if points else None
            start, prev = (point.last_seq, point.last_mac) if point else (0, GENESIS)
            if upto <= start:
                conn.rollback()
                return None
            checked, last_mac, first_at = walk_chain(conn, secret, start, prev, upto)
            if checked != upto - start:
                raise ChainBreak(
                    start + checked + 1,
                    "deleted",
                    f"rows {start + checked + 1} to {upto} are missing",
                )
        except ChainBreak as broken:
            conn.rollback()
            raise ConflictError(
                f"refusing to prune the audit trail: {broken}",
                hint="run `mloop audit verify`; a broken chain is evidence and is kept",
            ) from None
        last_at = conn.scalar(select(AuditRow.created_at).where(AuditRow.seq == upto))
        created_at = now_iso()
        fields = {
            "created_at": created_at,
            "last_seq": upto,
            "last_mac": last_mac,
            "pruned": upto,
            "first_at": point.first_at if point else (first_at or last_at),
            "last_at": last_at,
            "prev_mac": point.mac if point else GENESIS,
        }
        mac = checkpoint_mac(secret, **fields)
        new_id = conn.execute(
            insert(AuditCheckpointRow).values(**fields, mac=mac)
        ).inserted_primary_key[0]
        conn.execute(delete(AuditRow).where(AuditRow.seq <= upto))
        conn.commit()
    return Checkpoint(id=new_id, mac=mac, **fields)


def audit_key(settings: Settings) -> bytes:
    """The audit chain's key (MLOOP_AUDIT_SECRET, else $MLOOP_HOME/audit.key): signs checkpoints."""
    return server_secret(settings.audit_secret, settings.home, AUDIT_KEY_FILE)
