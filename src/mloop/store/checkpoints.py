"""The audit checkpoint table: one signed row per pruning of the audit chain's prefix.

Created by the Alembic revision `0007`. A checkpoint vouches for rows 1..`last_seq` (the
chain's MAC there is `last_mac`) after those rows were deleted by retention; see
`governance/checkpoints.py` for how it is signed and verified.
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base


class AuditCheckpointRow(Base):
    """Rows 1..last_seq were verified, then pruned; `mac` signs this row with the audit key."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[str] = mapped_column(String(40))
    last_seq: Mapped[int] = mapped_column(Integer, index=True)
    last_mac: Mapped[str] = mapped_column(String(64))
    pruned: Mapped[int] = mapped_column(Integer)  # rows pruned since genesis (= last_seq)
    first_at: Mapped[str] = mapped_column(String(40))  # time of row 1
    last_at: Mapped[str] = mapped_column(String(40))  # time of row last_seq
    prev_mac: Mapped[str] = mapped_column(String(64))  # the previous checkpoint's mac
    mac: Mapped[str] = mapped_column(String(64))
