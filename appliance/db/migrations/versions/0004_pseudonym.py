"""pseudonym: the encrypted map from research pseudonyms back to patients

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pseudonym",
        sa.Column("pseudonym", sa.String(length=64), primary_key=True),
        sa.Column("patient_id_enc", sa.LargeBinary(), nullable=False),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pseudonym")
