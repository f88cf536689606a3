"""the authenticator secrets sealed at rest (services/auth/sealing.py)

Seals every secret already stored, so the migration needs OVERDRACHT_AUTH_SEALING_KEYSET
when any provider has set the app up (or is setting it up); without one it stops and
changes nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: a sealed secret: Tink's 5-byte prefix, 12-byte nonce, the secret, a 16-byte tag, base64
SEALED = sa.String(200)

providers = sa.table(
    "providers",
    sa.column("id", sa.Uuid()),
    sa.column("totp_secret", SEALED),
    sa.column("totp_pending", SEALED),
)


def upgrade() -> None:
    op.alter_column("providers", "totp_secret", type_=SEALED)
    op.alter_column("providers", "totp_pending", type_=SEALED)
    _each_secret(lambda sealer, value, provider_id, column: sealer.seal(value, provider_id, column))


def downgrade() -> None:
    _each_secret(lambda sealer, value, provider_id, column: sealer.open(value, provider_id, column))
    op.alter_column("providers", "totp_secret", type_=sa.String(64))
    op.alter_column("providers", "totp_pending", type_=sa.String(64))


def _each_secret(change) -> None:
    from services.auth.sealing import Sealer

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(providers.c.id, providers.c.totp_secret, providers.c.totp_pending).where(
            sa.or_(providers.c.totp_secret.is_not(None), providers.c.totp_pending.is_not(None))
        )
    ).all()
    if not rows:
        return
    sealer = Sealer.from_config()  # RuntimeError without the setting: nothing has changed
    for provider_id, secret, pending in rows:
        values = {
            column: change(sealer, value, provider_id, column)
            for column, value in (("totp_secret", secret), ("totp_pending", pending))
            if value is not None
        }
        bind.execute(sa.update(providers).where(providers.c.id == provider_id).values(values))
