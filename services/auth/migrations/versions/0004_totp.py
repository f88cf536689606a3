"""the authenticator app: a TOTP secret per account, recovery codes, a policy per role

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("providers", sa.Column("totp_secret", sa.String(64), nullable=True))
    op.add_column("providers", sa.Column("totp_pending", sa.String(64), nullable=True))
    op.add_column("providers", sa.Column("totp_pending_at", sa.DateTime(timezone=True)))
    op.add_column("providers", sa.Column("totp_enabled_at", sa.DateTime(timezone=True)))
    op.add_column("providers", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column(
        "login_challenges",
        sa.Column("method", sa.String(10), server_default="sms", nullable=False),
    )
    op.add_column(
        "sessions",
        sa.Column("must_enrol", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_recovery_codes_provider_id"), "recovery_codes", ["provider_id"])
    op.create_table(
        "second_factor_policy",
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("totp_required", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("role"),
    )


def downgrade() -> None:
    op.drop_table("second_factor_policy")
    op.drop_index(op.f("ix_recovery_codes_provider_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_column("sessions", "must_enrol")
    op.drop_column("login_challenges", "method")
    op.drop_column("providers", "totp_last_step")
    op.drop_column("providers", "totp_enabled_at")
    op.drop_column("providers", "totp_pending_at")
    op.drop_column("providers", "totp_pending")
    op.drop_column("providers", "totp_secret")
