"""pending removals: objects to remove from the store after their row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_removals",
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("object_key"),
    )


def downgrade() -> None:
    op.drop_table("pending_removals")
