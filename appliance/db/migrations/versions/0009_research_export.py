"""research export: workspaces, the held-out set, dataset releases and their items

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KIND = sa.Enum("DIR", "S3", "DICOMWEB", name="workspacekind")
_RELEASE = sa.Enum("BUILDING", "SEALED", "COMPLETE", name="releasestate")
_ITEM = sa.Enum("PENDING", "SENT", "QUARANTINED", name="itemstate")


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "workspace",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", _text(64), nullable=False),
        sa.Column("kind", _KIND, nullable=False),
        sa.Column("url", _text(1024), nullable=False),
        sa.Column("endpoint", _text(1024), nullable=True),
        sa.Column("region", _text(64), nullable=True),
        sa.Column("credentials_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workspace_name", "workspace", ["name"], unique=True)
    op.create_table(
        "hold_out",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_uid", _text(64), nullable=True),
        sa.Column("patient_lookup", _text(64), nullable=True),
        sa.Column("rule", _text(128), nullable=False),
        sa.Column("added_by", _text(128), nullable=False),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_hold_out_study_uid", "hold_out", ["study_uid"], unique=True)
    op.create_index("ix_hold_out_patient_lookup", "hold_out", ["patient_lookup"], unique=True)
    op.create_table(
        "dataset_release",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", _text(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column("workspace", _text(64), nullable=False),
        sa.Column("state", _RELEASE, nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("profile", _text(64), nullable=False),
        sa.Column("excluded_held_out", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("manifest_digest", _text(64), nullable=True),
        sa.Column("manifest_url", _text(2048), nullable=True),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_index("ix_dataset_release_name", "dataset_release", ["name"])
    op.create_table(
        "release_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("release_pk", sa.Integer(), sa.ForeignKey("dataset_release.id"), nullable=False),
        sa.Column("instance_pk", sa.Integer(), sa.ForeignKey("instance.id"), nullable=False),
        sa.Column("state", _ITEM, nullable=False),
        sa.Column("path", _text(512), nullable=True),
        sa.Column("sha256", _text(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("modality", _text(16), nullable=True),
        sa.Column("sop_class", _text(64), nullable=True),
        sa.Column("reason", _text(512), nullable=True),
        sa.UniqueConstraint("release_pk", "instance_pk"),
    )
    op.create_index("ix_release_item_release_pk", "release_item", ["release_pk"])


def downgrade() -> None:
    op.drop_table("release_item")
    op.drop_table("dataset_release")
    op.drop_table("hold_out")
    op.drop_table("workspace")
    for kind in (_ITEM, _RELEASE, _KIND):
        kind.drop(op.get_bind(), checkfirst=True)
