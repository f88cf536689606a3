"""replies kept for requests the broker may redeliver

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 13:00:00

answers: the reply a request's first run committed with its work, until its caller stops
waiting (expires_at); a redelivered request gets it instead of a second run. withheld:
the read.withheld events still in the outbox with that work (see overdracht/db.py).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("request", sa.String(length=64), primary_key=True),
        sa.Column("reply", JSONB(), nullable=False),
        sa.Column("withheld", JSONB(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_answers_expires_at", "answers", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_answers_expires_at", table_name="answers")
    op.drop_table("answers")
