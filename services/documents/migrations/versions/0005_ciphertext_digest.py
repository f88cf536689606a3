"""ciphertext digest: a download checks the stored object against it, without decrypting

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 04:15:00

Nullable: a document stored before this revision has none, and its download is checked as
before (decrypted whole and held against the plaintext's size and SHA-256).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("ciphertext_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "ciphertext_sha256")
