"""result review: each model result's SEG, SR and volumes, and clinicians' assessments of it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_DECISION = sa.Enum("ACCEPTED", "REJECTED", "CORRECTED", name="decision")


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "inference_result",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_pk", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("study_uid", _text(64), nullable=False),
        sa.Column("series_uid", _text(64), nullable=False),
        sa.Column("seg_uid", _text(64), nullable=False),
        sa.Column("sr_uid", _text(64), nullable=False),
        sa.Column("model", _text(128), nullable=False),
        sa.Column("version", _text(64), nullable=False),
        sa.Column("volumes_ml", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_inference_result_job_pk", "inference_result", ["job_pk"])
    op.create_index("ix_inference_result_study_uid", "inference_result", ["study_uid"])
    op.create_index("ix_inference_result_seg_uid", "inference_result", ["seg_uid"])
    op.create_table(
        "result_assessment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("result_pk", sa.Integer(), sa.ForeignKey("inference_result.id"), nullable=False),
        sa.Column("decision", _DECISION, nullable=False),
        sa.Column("reason_code", _text(32), nullable=True),
        sa.Column("reason_text_enc", sa.LargeBinary(), nullable=True),
        sa.Column("username", _text(64), nullable=False),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("assessment_uid", _text(64), nullable=True),
    )
    op.create_index("ix_result_assessment_result_pk", "result_assessment", ["result_pk"])


def downgrade() -> None:
    op.drop_table("result_assessment")
    op.drop_table("inference_result")
    _DECISION.drop(op.get_bind(), checkfirst=True)
