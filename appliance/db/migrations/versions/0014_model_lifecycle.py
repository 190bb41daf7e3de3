"""model lifecycle: lineage and activation time of versions, validation reports, reference labels

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 22:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    when = sqlmodel.sql.sqltypes.UTCDateTime
    with op.batch_alter_table("model") as table:
        table.add_column(sa.Column("activated_at", when(), nullable=True))
        table.add_column(sa.Column("release", text(length=160), nullable=True))
    op.execute("UPDATE model SET activated_at = changed_at WHERE state = 'ACTIVE'")
    op.create_table(
        "model_validation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", text(length=128), nullable=False),
        sa.Column("version", text(length=64), nullable=False),
        sa.Column("baseline", text(length=64), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("failed_criteria", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("digest", text(length=64), nullable=False),
    )
    op.create_index("ix_model_validation_name", "model_validation", ["name"])
    op.create_table(
        "reference_label",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("series_uid", text(length=64), nullable=False),
        sa.Column("seg_uid", text(length=64), nullable=False),
        sa.Column("imported_by", text(length=128), nullable=False),
        sa.Column("imported_at", when(), nullable=False),
    )
    op.create_index("ix_reference_label_series_uid", "reference_label", ["series_uid"], unique=True)


def downgrade() -> None:
    op.drop_table("reference_label")
    op.drop_table("model_validation")
    with op.batch_alter_table("model") as table:
        table.drop_column("release")
        table.drop_column("activated_at")
