"""what each provider has not seen yet, and when she was last told

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:45:00

relationships.unseen_since: the first document someone else placed after she last opened
the client (null: nothing new); relationships.seen_at: when she last opened it (an event
that arrives late marks nothing she saw); relationships.notified_at: the last
new-document e-mail about this client to her, for the at-most-one-an-hour rule.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "relationships", sa.Column("unseen_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "relationships", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("relationships", sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_relationships_provider", "relationships", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_relationships_provider", table_name="relationships")
    op.drop_column("relationships", "seen_at")
    op.drop_column("relationships", "notified_at")
    op.drop_column("relationships", "unseen_since")
