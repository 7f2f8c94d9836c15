"""Web console login: identities' password hashes and server-side console sessions.

Revision ID: 0009
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0003"  # the governance branch: identities are created there
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_passwords",
        sa.Column("identity", sa.String(128), sa.ForeignKey("identities.name"), primary_key=True),
        sa.Column("hash", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("identity", sa.String(128), sa.ForeignKey("identities.name"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_console_sessions_identity", "console_sessions", ["identity"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_identity", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("identity_passwords")
