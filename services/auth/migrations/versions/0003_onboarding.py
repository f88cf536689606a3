"""onboarding: invited accounts, activation links, deactivation, and regions' provider lists

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:00:00

Every account made before this revision had a password from the start: it counts as
activated when it was created.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("providers", "password_hash", existing_type=sa.String(200), nullable=True)
    op.add_column("providers", sa.Column("organisation", sa.String(200), nullable=True))
    op.add_column("providers", sa.Column("agb_code", sa.String(8), nullable=True))
    op.add_column("providers", sa.Column("activated_at", sa.DateTime(timezone=True)))
    op.add_column("providers", sa.Column("deactivated_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE providers SET activated_at = created_at")
    op.create_table(
        "activations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("codes_sent", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_activations_provider_id"), "activations", ["provider_id"])
    op.create_table(
        "provider_lists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["submitted_by"], ["providers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_provider_lists_region"), "provider_lists", ["region"])
    op.create_table(
        "provider_list_rows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("profession", sa.String(50), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("agb_code", sa.String(8), nullable=True),
        sa.Column("provider_id", sa.Uuid(), nullable=True),
        sa.Column("problem", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(["list_id"], ["provider_lists.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_provider_list_rows_list_id"), "provider_list_rows", ["list_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_list_rows_list_id"), table_name="provider_list_rows")
    op.drop_table("provider_list_rows")
    op.drop_index(op.f("ix_provider_lists_region"), table_name="provider_lists")
    op.drop_table("provider_lists")
    op.drop_index(op.f("ix_activations_provider_id"), table_name="activations")
    op.drop_table("activations")
    # a deactivated account must not come back to life without its column
    op.execute("UPDATE providers SET password_hash = '!' WHERE deactivated_at IS NOT NULL")
    op.drop_column("providers", "deactivated_at")
    op.drop_column("providers", "activated_at")
    op.drop_column("providers", "agb_code")
    op.drop_column("providers", "organisation")
    op.execute("UPDATE providers SET password_hash = '!' WHERE password_hash IS NULL")
    op.alter_column("providers", "password_hash", existing_type=sa.String(200), nullable=False)
