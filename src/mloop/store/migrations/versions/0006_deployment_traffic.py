"""Deployment traffic: rows answered per deployment variant, for `mloop deploy status`.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_traffic",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_deployment_traffic_time", "deployment_traffic", ["deployment", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_deployment_traffic_time", table_name="deployment_traffic")
    op.drop_table("deployment_traffic")
