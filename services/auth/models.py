"""Auth's own tables: providers, pending SMS challenges and sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from overdracht.db import outbox_table


class Base(DeclarativeBase):
    pass


Outbox = outbox_table(Base.metadata)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str] = mapped_column(sa.String(20))
    region: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(20))
    profession: Mapped[str | None] = mapped_column(sa.String(50))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    #: consecutive failed passwords and codes; back to 0 on a login and when a lock begins
    failed_logins: Mapped[int] = mapped_column(default=0)
    #: when the latest lock began (kept after it ends, for the record)
    locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: the account refuses every login until then
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: locks since the last login (each lasts twice as long as the one before)
    lock_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def profile(self) -> dict[str, str | None]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "phone": self.phone,
            "email": self.email,
            "region": self.region,
            "role": self.role,
            "profession": self.profession,
        }


class LoginChallenge(Base):
    """A password that checked out, waiting for the SMS code."""

    __tablename__ = "login_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE")
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: when the current code was sent, and how often it was sent again ("opnieuw sturen")
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resends: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed logins from one address or network, as a token bucket (GCRA).

    `key` is `ip:<address>` or `net:<network>/<prefix>`; `tat` (the theoretical arrival
    time) moves on by an hour divided by the limit with every failure, from now or from
    where it stood, whichever is later. Whoever is more than an hour minus one interval
    ahead is refused until that is no longer so. Kept here, not in a gateway, so that every
    gateway instance sees the same count.
    """

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    tat: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


class Session(Base):
    """A logged-in session; only the token's hash is kept."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
