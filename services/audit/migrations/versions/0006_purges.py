"""audit records kept for a configured period, then purged by the operator

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 14:00:00

audit_purges: each purge (the oldest records up to seq_through, whose last hash the
chain's next record links to), append-only. The trigger on audit_records lets its owner
delete records, and only those up to the seq the purge names in its transaction
(`overdracht.audit_purge_through`); every other role, and every update, still fails.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_purges",
        sa.Column("seq_through", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("removed", sa.BigInteger(), nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("""
        CREATE FUNCTION audit_purges_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'audit_purges is append-only';
        END
        $$ LANGUAGE plpgsql
    """)
    op.execute("""
        CREATE TRIGGER audit_purges_no_update_delete BEFORE UPDATE OR DELETE OR TRUNCATE
        ON audit_purges FOR EACH STATEMENT EXECUTE FUNCTION audit_purges_append_only()
    """)
    op.execute("""
        CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$
        DECLARE
            through text := current_setting('overdracht.audit_purge_through', true);
        BEGIN
            IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW'
               AND through IS NOT NULL AND through <> ''
               AND OLD.seq <= through::bigint
               AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class
                                   WHERE oid = TG_RELID)
            THEN
                RETURN OLD;  -- the operator's purge of records past their retention
            END IF;
            RAISE EXCEPTION 'audit_records is append-only';
        END
        $$ LANGUAGE plpgsql
    """)


def downgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'audit_records is append-only';
        END
        $$ LANGUAGE plpgsql
    """)
    op.execute("DROP TRIGGER audit_purges_no_update_delete ON audit_purges")
    op.execute("DROP FUNCTION audit_purges_append_only()")
    op.drop_table("audit_purges")
