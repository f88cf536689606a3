"""the length of a document's stored object, as written at upload

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 13:30:00

With it and the ciphertext's SHA-256, a large document is checked in the one read that
serves it: an object of another length is refused before the answer, its digest is held
back against before the last piece. Null for documents stored before it (read twice).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("ciphertext_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "ciphertext_size")
