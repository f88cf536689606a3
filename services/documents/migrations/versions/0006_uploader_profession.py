"""the uploader's profession, shown beside her name in the document list

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 08:00:00

Nullable: a document placed before this revision shows the name alone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("uploaded_by_profession", sa.String(length=50), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("documents", "uploaded_by_profession")
