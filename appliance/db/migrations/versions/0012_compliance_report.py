"""compliance report: each signed report, what it found, and the configuration's fingerprint

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "compliance_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("trigger", text(length=80), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("worst", text(length=16), nullable=True),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("digest", text(length=64), nullable=False),
    )
    op.create_index("ix_compliance_report_created_at", "compliance_report", ["created_at"])


def downgrade() -> None:
    op.drop_table("compliance_report")
