"""release request: researchers' requests for a release, approved or refused by an admin

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 19:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_STATE = sa.Enum("PENDING", "APPROVED", "REFUSED", "RELEASED", "FAILED", name="requeststate")


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    when = sqlmodel.sql.sqltypes.UTCDateTime
    op.create_table(
        "release_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", text(length=64), nullable=False),
        sa.Column("workspace", text(length=64), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("purpose", text(length=1000), nullable=False),
        sa.Column("requested_by", text(length=64), nullable=False),
        sa.Column("requested_at", when(), nullable=False),
        sa.Column("state", _STATE, nullable=False),
        sa.Column("decided_by", text(length=64), nullable=True),
        sa.Column("decided_at", when(), nullable=True),
        sa.Column("note", text(length=512), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
    )
    op.create_index("ix_release_request_state", "release_request", ["state"])


def downgrade() -> None:
    op.drop_table("release_request")
    _STATE.drop(op.get_bind(), checkfirst=True)
