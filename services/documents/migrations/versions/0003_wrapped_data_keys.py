"""wrapped data keys: every document's body is encrypted with its own key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00

A document stored before this revision has a plaintext body and no key, and a migration
holds neither the master key nor the object store to encrypt it. Only development
platforms can hold such documents (encryption came before any production use), so the
upgrade refuses rather than leave a document that would be served unauthenticated.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    stored = op.get_bind().execute(sa.text("SELECT count(*) FROM documents")).scalar_one()
    if stored:
        raise RuntimeError(
            f"documents stored unencrypted before revision 0003: {stored}; on a "
            "development platform start over with `make clean`"
        )
    op.add_column("documents", sa.Column("wrapped_key", sa.LargeBinary(), nullable=False))
    op.add_column("documents", sa.Column("master_key_id", sa.String(length=64), nullable=False))


def downgrade() -> None:
    op.drop_column("documents", "master_key_id")
    op.drop_column("documents", "wrapped_key")
