"""find a read's withholding by the read it names

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:10:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the audit query marks each read named by a read.withheld as not shown
    op.execute("""
        CREATE INDEX ix_audit_withheld_read ON audit_records
        ((envelope -> 'detail' ->> 'read_event_id'))
        WHERE event = 'read.withheld'
    """)


def downgrade() -> None:
    op.drop_index("ix_audit_withheld_read", table_name="audit_records")
