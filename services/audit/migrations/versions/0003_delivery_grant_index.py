"""find a download's delivery record by the grant it names

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the audit query marks each document.downloaded with its document.delivery, if any
    op.execute("""
        CREATE INDEX ix_audit_delivery_grant ON audit_records
        ((envelope -> 'detail' ->> 'grant_event_id'))
        WHERE event = 'document.delivery'
    """)


def downgrade() -> None:
    op.drop_index("ix_audit_delivery_grant", table_name="audit_records")
