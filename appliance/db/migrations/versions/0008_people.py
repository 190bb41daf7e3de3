"""people's access: accounts, access tokens, break-glass grants, encrypted study summaries

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:05:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ROLE = sa.Enum("CLINICIAN", "RESEARCHER", "AUDITOR", "ADMIN", name="role")


def upgrade() -> None:
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", _ROLE, nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("totp_secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("last_totp_step", sa.Integer(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("modalities", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_user_account_username", "user_account", ["username"], unique=True)
    op.create_table(
        "access_token",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), primary_key=True),
        sa.Column("user_pk", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("csrf_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_access_token_user_pk", "access_token", ["user_pk"])
    op.create_index("ix_access_token_expires_at", "access_token", ["expires_at"])
    op.create_table(
        "break_glass",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_pk", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=False),
        sa.Column("study_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason_text_enc", sa.LargeBinary(), nullable=False),
        sa.Column("granted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reviewed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reviewed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("review_comment_enc", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_break_glass_user_pk", "break_glass", ["user_pk"])
    op.create_index("ix_break_glass_study_uid", "break_glass", ["study_uid"])
    op.create_table(
        "study_summary",
        sa.Column("study_pk", sa.Integer(), sa.ForeignKey("study.id"), primary_key=True),
        sa.Column("attributes_enc", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_summary")
    op.drop_table("break_glass")
    op.drop_table("access_token")
    op.drop_table("user_account")
    _ROLE.drop(op.get_bind(), checkfirst=True)
