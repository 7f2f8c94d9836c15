"""Prediction log and stage transitions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("prediction", sa.JSON(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_prediction_log_model_time",
        "prediction_log",
        ["model_name", "model_version", "created_at"],
    )
    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(32), nullable=False),
        sa.Column("to_stage", sa.String(32), nullable=False),
        sa.Column("replaced_version", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_stage_transitions_model_name", "stage_transitions", ["model_name"])


def downgrade() -> None:
    op.drop_index("ix_stage_transitions_model_name", "stage_transitions")
    op.drop_table("stage_transitions")
    op.drop_index("ix_prediction_log_model_time", "prediction_log")
    op.drop_table("prediction_log")
