"""Audit checkpoints: signed summaries of the audit rows that retention pruned.

Revision ID: 0007
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_mac", sa.String(64), nullable=False),
        sa.Column("pruned", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.String(40), nullable=False),
        sa.Column("last_at", sa.String(40), nullable=False),
        sa.Column("prev_mac", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_checkpoints_last_seq", "audit_checkpoints", ["last_seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoints_last_seq", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
