"""The audit trail: an append-only table whose rows are chained by HMAC-SHA256.

Each row's MAC covers the previous row's MAC and the row's own content (time, actor, action,
target, detail), under a server secret (`MLOOP_AUDIT_SECRET`, else `$MLOOP_HOME/audit.key`).
Appends are serialized by locking the single `audit_head` row (`SELECT ... FOR UPDATE` on
PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so concurrent writers in several processes still
build one chain. `verify()` walks the chain and names the first row that was modified, deleted
or moved; the head row catches rows deleted from the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from sqlalchemy import Connection, select, update

from mloop.errors import ServiceUnavailableError
from mloop.security.secrets import AUDIT_KEY_FILE, server_secret
from mloop.settings import Settings
from mloop.store import Database, open_database
from mloop.store.bulk import BulkInsert
from mloop.store.governance import AuditHeadRow, AuditRow

GENESIS = "0" * 64
_CHUNK = 2000


def now_iso() -> str:
    """UTC time as fixed-width ISO 8601 (sorts as text, round-trips exactly)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AuditEvent:
    """One thing that happened: who did what to which target, with details."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class VerifyReport:
    """The result of checking the chain; `seq`/`kind` name the first broken row."""

    ok: bool
    rows: int
    head_mac: str
    seq: int | None = None
    kind: str | None = None  # modified | deleted | reordered
    message: str = "the audit chain is intact"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_mac": self.head_mac,
            "seq": self.seq,
            "kind": self.kind,
            "message": self.message,
        }


_SCALARS = frozenset({str, int, bool, type(None)})


def _detail_text(detail: dict[str, Any]) -> str:
    """The stored detail: compact JSON with sorted keys.

    A flat dict of plain scalars (every API call's detail) is written by orjson, ten times
    cheaper than `json.dumps`, with the same parsed content; anything else (nested values,
    NaN, objects that need `default=str`) by `json.dumps` as always.
    """
    for value in detail.values():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):  # json.dumps writes NaN, orjson null
                break
        elif kind not in _SCALARS:
            break
    else:
        try:
            return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # keys that are not strings, ints beyond 64 bits
            pass
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)


def _mac_content(*fields: Any) -> bytes:
    """`json.dumps(list(fields), separators=(",", ":")).encode()`: the signed bytes.

    orjson gives the very same bytes for strings when its output is ASCII without DEL: both
    escape quotes, backslashes and control characters alike; only json.dumps escapes DEL and
    non-ASCII (as \\uXXXX), which orjson writes as they are. Any other case is left to
    `json.dumps`, so rows written before and after this shortcut verify alike.
    """
    prev, created_at, actor, action, target, detail = fields
    kind = type(prev)
    if kind is type(created_at) is type(actor) is type(action) is type(target) is type(detail):
        try:
            content = orjson.dumps(fields) if kind is str else None
        except orjson.JSONEncodeError:  # lone surrogates, which json.dumps escapes
            content = None
        if content is not None and content.isascii() and b"\x7f" not in content:
            return content
    return json.dumps(fields, separators=(",", ":")).encode()


_keyed: dict[bytes, Any] = {}


def _keyed_hmac(secret: bytes) -> Any:
    """HMAC-SHA256 keyed with `secret`, to be copied per row (the key schedule runs once).

    The OpenSSL object inside `hmac.HMAC` when there is one: its `copy()` is one C call, about
    a quarter cheaper per row than the Python wrapper's (same digest: the same object).
    """
    keyed = _keyed.get(secret)
    if keyed is None:
        wrapper = hmac.new(secret, digestmod=hashlib.sha256)
        inner = getattr(wrapper, "_hmac", None)
        keyed = _keyed[secret] = inner if hasattr(inner, "copy") else wrapper
    return keyed


def _mac(
    secret: bytes, prev: str, created_at: str, actor: str, action: str, target: str, detail: str
) -> str:
    """HMAC-SHA256 over the previous MAC and the row's content, as hex."""
    mac = _keyed_hmac(secret).copy()
    mac.update(_mac_content(prev, created_at, actor, action, target, detail))
    return mac.hexdigest()


# A row before it is chained: (created_at, actor, action, target, detail as stored text).
Entry = tuple[str, str, str, str, str]


def entry(event: AuditEvent) -> Entry:
    """The stored fields of an event: actor and target cut to their columns, detail as text."""
    return (
        event.created_at,
        str(event.actor)[:128],
        event.action,
        str(event.target)[:512],
        _detail_text(event.detail),
    )


_COLUMNS = ("seq", "created_at", "actor", "action", "target", "detail", "prev_mac", "mac")
_INSERT = BulkInsert(AuditRow.__table__, _COLUMNS)


class AuditLog:
    """Append to, verify and export one platform database's audit chain."""

    def __init__(self, database: Database, secret: bytes) -> None:
        self.database = database
        self._secret = secret

    # ----------------------------------------------------------------------------- writes

    def record(self, actor: str, action: str, target: str, **detail: Any) -> int:
        """Append one event now; returns its sequence number."""
        return self.append([AuditEvent(actor, action, target, detail)])[-1]

    def append(self, events: list[AuditEvent]) -> list[int]:
        """Append events in order, in one transaction holding the chain lock."""
        return self.append_entries([entry(event) for event in events])

    def append_entries(self, entries: list[Entry]) -> list[int]:
        """Append rows already in their stored form (`entry`), in order, in one transaction
        holding the chain lock; returns their sequence numbers."""
        if not entries:
            return []
        try:
            with self.database.engine.connect() as conn:
                head = self._lock_head(conn)
                seq, prev = head.seq, head.mac or GENESIS
                first = seq + 1
                rows = []
                append = rows.append
                keyed = _keyed_hmac(self._secret)
                content = _mac_content
                for created_at, actor, action, target, detail in entries:
                    seq += 1
                    mac = keyed.copy()
                    mac.update(content(prev, created_at, actor, action, target, detail))
                    signed = mac.hexdigest()
                    append((seq, created_at, actor, action, target, detail, prev, signed))
                    prev = signed
                _INSERT(conn, rows)
                conn.execute(
                    update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=seq, mac=prev)
                )
                conn.commit()
        except Exception as exc:
            raise ServiceUnavailableError(
                f"cannot write to the audit trail in {self.database.safe_url}: {exc}"
            ) from exc
        return list(range(first, seq + 1))

    def _lock_head(self, conn: Connection) -> Any:
        """Start the transaction holding the chain lock and return the head row."""
        if self.database.is_sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            query = select(AuditHeadRow.seq, AuditHeadRow.mac).where(AuditHeadRow.id == 1)
        else:
            query = (
                select(AuditHeadRow.seq, AuditHeadRow.mac)
                .where(AuditHeadRow.id == 1)
                .with_for_update()
            )
        return conn.execute(query).one()

    # ------------------------------------------------------------------------------ reads

    def head(self) -> tuple[int, str]:
        with self.database.engine.connect() as conn:
            row = conn.execute(
                select(AuditHeadRow.seq, AuditHeadRow.mac).where(AuditHeadRow.id == 1)
            ).one()
            return row.seq, row.mac

    def rows(self, since: str | None = None, action: str | None = None) -> Iterator[dict[str, Any]]:
        """Rows in chain order as dicts (detail parsed), optionally from a time on."""
        last = 0
        while True:
            query = select(AuditRow).where(AuditRow.seq > last).order_by(AuditRow.seq).limit(_CHUNK)
            if since:
                query = query.where(AuditRow.created_at >= since)
            if action:
                query = query.where(AuditRow.action == action)
            with self.database.session() as session:
                chunk = session.scalars(query).all()
                out = [_row_dict(row) for row in chunk]
            if not out:
                return
            yield from out
            last = out[-1]["seq"]

    def export(self, out: IO[str], since: str | None = None, action: str | None = None) -> int:
        """Write rows as JSON lines; returns how many."""
        count = 0
        for row in self.rows(since, action):
            out.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
        return count

    def verify(self, on_progress: Any = None) -> VerifyReport:
        """Recompute the chain; report the first modified, deleted or reordered row."""
        head_seq, head_mac = self.head()
        progress = (lambda done: on_progress(done, head_seq)) if on_progress else None
        checked = 0
        try:
            with self.database.engine.connect() as conn:
                checked, last_mac, _ = walk_chain(conn, self._secret, on_progress=progress)
            check_head(head_seq, head_mac, checked, last_mac)
        except ChainBreak as broken:
            return VerifyReport(
                False, broken.checked, head_mac, broken.seq, broken.kind, str(broken)
            )
        return VerifyReport(
            True, checked, head_mac, message=f"the audit chain is intact: {checked} rows"
        )


class ChainBreak(Exception):
    """The first row (`seq`) where the chain does not hold, and how (`kind`)."""

    def __init__(self, seq: int, kind: str, message: str, checked: int = 0) -> None:
        super().__init__(message)
        self.seq, self.kind, self.checked = seq, kind, checked


def walk_chain(
    conn: Connection,
    secret: bytes,
    after: int = 0,
    prev: str = GENESIS,
    upto: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, str, str | None]:
    """Check rows after..upto, the first linked to MAC `prev` (the genesis, or a checkpoint's
    last MAC): (rows checked, last MAC, first row's time). Raises ChainBreak at the first row
    modified, deleted or moved."""
    expected_seq, expected_prev, checked, first_at = after + 1, prev, 0, None
    last = after
    while True:
        query = select(AuditRow).where(AuditRow.seq > last).order_by(AuditRow.seq).limit(_CHUNK)
        if upto is not None:
            query = query.where(AuditRow.seq <= upto)
        chunk = conn.execute(query).all()
        if not chunk:
            return checked, expected_prev, first_at
        for r in chunk:
            if r.seq != expected_seq:
                gap = (
                    f"row {expected_seq} was deleted"
                    if r.seq == expected_seq + 1
                    else f"rows {expected_seq} to {r.seq - 1} were deleted"
                )
                raise ChainBreak(
                    expected_seq,
                    "deleted",
                    f"{gap}: the chain jumps from row {expected_seq - 1} to row {r.seq}",
                    checked,
                )
            own = _mac(secret, r.prev_mac, r.created_at, r.actor, r.action, r.target, r.detail)
            if not hmac.compare_digest(own, r.mac):
                raise ChainBreak(
                    r.seq,
                    "modified",
                    f"row {r.seq} was modified: its MAC does not match its "
                    f"content ({r.action} on {r.target} by {r.actor})",
                    checked,
                )
            if r.prev_mac != expected_prev:
                raise _misplaced(conn, r.seq, r.prev_mac, checked, checkpoint=r.seq == after + 1)
            first_at = first_at or r.created_at
            expected_prev, expected_seq = r.mac, r.seq + 1
            checked += 1
        last = chunk[-1].seq
        if on_progress is not None:
            on_progress(checked)


def check_head(head_seq: int, head_mac: str, end: int, last_mac: str) -> None:
    """The chain head (the count and MAC every append updates) against the walk's end: rows
    deleted from the end leave the head ahead of the last row."""
    if head_seq > end:
        first = end + 1
        which = f"row {first}" if first == head_seq else f"rows {first} to {head_seq}"
        raise ChainBreak(
            first,
            "deleted",
            f"{which} deleted from the end: the chain head records {head_seq} rows, the "
            f"chain stops at row {end}",
            end,
        )
    if head_seq and head_mac != last_mac:
        raise ChainBreak(end, "modified", f"the chain head does not match row {end}", end)


def _misplaced(
    conn: Connection, seq: int, prev_mac: str, checked: int, *, checkpoint: bool
) -> ChainBreak:
    """Why row `seq` does not link to the row before it: moved, or its predecessor deleted."""
    before = conn.scalar(select(AuditRow.seq).where(AuditRow.mac == prev_mac))
    if before is not None:
        return ChainBreak(
            seq,
            "reordered",
            f"row {seq} was reordered: it was written right after row {before}, not after "
            f"row {seq - 1}",
            checked,
        )
    follows = "the newest checkpoint" if checkpoint else f"row {seq - 1}"
    return ChainBreak(
        seq,
        "deleted",
        f"row {seq} does not follow {follows}: the row written before it was deleted and "
        "the rows renumbered",
        checked,
    )


def _row_dict(row: AuditRow) -> dict[str, Any]:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = row.detail
    return {
        "seq": row.seq,
        "created_at": row.created_at,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": detail,
        "prev_mac": row.prev_mac,
        "mac": row.mac,
    }


_logs: dict[str, AuditLog] = {}
_logs_lock = threading.Lock()


def audit_log(settings: Settings) -> AuditLog:
    """The audit chain of these settings' platform database (one object per URL and secret)."""
    secret = server_secret(settings.audit_secret, settings.home, AUDIT_KEY_FILE)
    key = settings.database_url + "\0" + hashlib.sha256(secret).hexdigest()
    with _logs_lock:
        if key not in _logs:
            _logs[key] = AuditLog(open_database(settings), secret)
        return _logs[key]
