"""`mloop predictions export`: the prediction log, filtered by time and model, read in chunks.

Rows come in time order (then id), read by keyset pages of `_CHUNK` rows, so an export of a
large log neither holds it in memory nor holds a long transaction open.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from mloop.store import Database, PredictionRecord

_CHUNK = 5000
_TABLE = PredictionRecord.__table__

# Parquet schema of an export (see data/rows.py); JSON Lines keeps values as they are.
COLUMNS: dict[str, str] = {
    name: {"created_at": "time", "features": "json", "prediction": "json"}.get(
        name, "float" if name in ("probability", "latency_ms") else "string"
    )
    for name in (column.name for column in _TABLE.columns)
}


def prediction_rows(
    database: Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    version: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Logged predictions with since <= created_at < until, of `model` (and `version`)."""
    created, ident = _TABLE.c.created_at, _TABLE.c.id
    filters = []
    if since is not None:
        filters.append(created >= since)
    if until is not None:
        filters.append(created < until)
    if model:
        filters.append(_TABLE.c.model_name == model)
    if version:
        filters.append(_TABLE.c.model_version == version)
    after: tuple[datetime, str] | None = None
    while True:
        page = list(filters)
        if after is not None:
            page.append(or_(created > after[0], and_(created == after[0], ident > after[1])))
        query = select(_TABLE).where(*page).order_by(created, ident).limit(_CHUNK)
        with database.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        if not rows:
            return
        yield from rows
        after = (rows[-1]["created_at"], rows[-1]["id"])
