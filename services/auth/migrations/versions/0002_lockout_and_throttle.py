"""locks that end, SMS resends, and a login throttle per address and network

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

An account locked before this revision stayed locked for good; it now gets the first
lock's length (15 minutes) from the moment of migrating.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("providers", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "providers", sa.Column("lock_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(
        "UPDATE providers SET locked_until = now() + interval '15 minutes', lock_count = 1,"
        " failed_logins = 0 WHERE locked_at IS NOT NULL"
    )
    op.add_column(
        "login_challenges", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "login_challenges",
        sa.Column("resends", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_login_throttle_tat"), "login_throttle", ["tat"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttle_tat"), table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_column("login_challenges", "resends")
    op.drop_column("login_challenges", "sent_at")
    op.drop_column("providers", "lock_count")
    op.drop_column("providers", "locked_until")
