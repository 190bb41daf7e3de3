"""result correction: the SEG a clinician made in place of an AI result's

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 18:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("result_assessment") as table:
        table.add_column(
            sa.Column("corrected_seg_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("result_assessment") as table:
        table.drop_column("corrected_seg_uid")
