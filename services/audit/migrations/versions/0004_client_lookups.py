"""audit's own keyed hashes of a client's BSN and phone, to find her records later

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00

Written once, from the sealed identifiers in client.created (overdracht/lookup.py); the
runtime role may only read and insert (ops/provision.py, APPEND_ONLY).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_lookups",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "kind"),
    )
    op.create_index("ix_client_lookups_find", "client_lookups", ["birth_date", "kind", "hash"])


def downgrade() -> None:
    op.drop_index("ix_client_lookups_find", table_name="client_lookups")
    op.drop_table("client_lookups")
