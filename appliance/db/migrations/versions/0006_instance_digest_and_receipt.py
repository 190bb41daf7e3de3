"""instance content digest (a resend that differs is a conflict) and whether its receipt is audited

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("receipt_audited", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.create_index("ix_instance_receipt_audited", ["receipt_audited"])


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index("ix_instance_receipt_audited")
        batch_op.drop_column("receipt_audited")
        batch_op.drop_column("content_digest")
