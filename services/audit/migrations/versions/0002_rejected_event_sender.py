"""rejected events name their broker-validated sender

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "rejected_events",
        sa.Column("sender", sa.String(length=100), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("rejected_events", "sender")
