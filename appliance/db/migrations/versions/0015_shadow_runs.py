"""shadow runs: a candidate beside the active version, and what it did on each series

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 00:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    when = sqlmodel.sql.sqltypes.UTCDateTime
    op.create_table(
        "shadow_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", text(length=128), nullable=False),
        sa.Column("version", text(length=64), nullable=False),
        sa.Column("started_by", text(length=128), nullable=False),
        sa.Column("started_at", when(), nullable=False),
        sa.Column("until", when(), nullable=True),
        sa.Column("max_series", sa.Integer(), nullable=True),
        sa.Column("ended_at", when(), nullable=True),
    )
    op.create_index("ix_shadow_run_name", "shadow_run", ["name"])
    op.create_table(
        "shadow_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_pk", sa.Integer(), sa.ForeignKey("shadow_run.id"), nullable=False),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("series_uid", text(length=64), nullable=False),
        sa.Column("active_version", text(length=64), nullable=False),
        sa.Column("at", when(), nullable=False),
        sa.Column("agreement", sa.JSON(), nullable=False),
        sa.Column("volumes_ml", sa.JSON(), nullable=False),
        sa.Column("active_volumes_ml", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("active_seconds", sa.Float(), nullable=True),
        sa.Column("failure", text(length=500), nullable=True),
    )
    op.create_index("ix_shadow_result_run_pk", "shadow_result", ["run_pk"])


def downgrade() -> None:
    op.drop_table("shadow_result")
    op.drop_table("shadow_run")
