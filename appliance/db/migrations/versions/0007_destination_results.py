"""destination.results: only destinations marked so receive the inference results (SEG, SR)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("destination", schema=None) as batch_op:
        batch_op.add_column(sa.Column("results", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("destination", schema=None) as batch_op:
        batch_op.drop_column("results")
