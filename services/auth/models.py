"""Auth's own tables: accounts and their activation, provider lists, SMS challenges, sessions."""

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
    organisation: Mapped[str | None] = mapped_column(sa.String(200))
    agb_code: Mapped[str | None] = mapped_column(sa.String(8))
    #: none until she has chosen one (an invited account), and again after a reset
    password_hash: Mapped[str | None] = mapped_column(sa.String(200))
    #: consecutive failed passwords and codes; back to 0 on a login and when a lock begins
    failed_logins: Mapped[int] = mapped_column(default=0)
    #: when the latest lock began (kept after it ends, for the record)
    locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: the account refuses every login until then
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: locks since the last login (each lasts twice as long as the one before)
    lock_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: when she first chose her password (at once for an account made with one)
    activated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: a deactivated account logs in no more and keeps no session; its row stays for the record
    deactivated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: the authenticator app (services/auth/totp.py): its secret once confirmed, the one
    #: being set up (both sealed, services/auth/sealing.py), and the last time step a code
    #: was accepted for (older ones are replays)
    totp_secret: Mapped[str | None] = mapped_column(sa.String(200))
    totp_pending: Mapped[str | None] = mapped_column(sa.String(200))
    totp_pending_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def clear_lock(self) -> None:
        """No lock, and failures and locks counted from nothing again."""
        self.locked_until = None
        self.failed_logins = 0
        self.lock_count = 0

    def may_log_in(self, now: datetime) -> bool:
        return (
            self.password_hash is not None
            and self.deactivated_at is None
            and not self.is_locked(now)
        )

    def status(self, now: datetime) -> str:
        """What the coördinator and the beheerder read: one of ACCOUNT_STATUSES."""
        if self.deactivated_at is not None:
            return "deactivated"
        if self.is_locked(now):
            return "locked"
        return "active" if self.password_hash is not None else "invited"

    def profile(self) -> dict[str, str | None]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "phone": self.phone,
            "email": self.email,
            "region": self.region,
            "role": self.role,
            "profession": self.profession,
            "second_factor": "totp" if self.totp_secret else "sms",
        }


#: an account's status, as Provider.status tells it; "submitted" is a list row not yet registered
ACCOUNT_STATUSES = ("submitted", "invited", "active", "locked", "deactivated")


class Activation(Base):
    """A one-time link that lets a provider choose her password, after an SMS code.

    Made when she is registered (`invite`) or reset by the helpdesk (`reset`); a newer one
    supersedes it. Only the token's hash is kept, like the code's.
    """

    __tablename__ = "activations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    purpose: Mapped[str] = mapped_column(sa.String(10))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    code_hash: Mapped[str | None] = mapped_column(sa.String(64))
    code_sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    code_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    code_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    codes_sent: Mapped[int] = mapped_column(default=0, server_default="0")


class ProviderList(Base):
    """A region's list of care providers as its coördinator submitted it."""

    __tablename__ = "provider_lists"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    region: Mapped[str] = mapped_column(sa.String(100), index=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    submitted_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="SET NULL")
    )
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: submitted, registered (every row that could be) or rejected
    status: Mapped[str] = mapped_column(sa.String(12), default="submitted")
    reviewed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class ProviderListRow(Base):
    """One provider of a list, as valid as it was checked; registering links its account."""

    __tablename__ = "provider_list_rows"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    list_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("provider_lists.id", ondelete="CASCADE"), index=True
    )
    #: the row's number as Excel shows it (the header is 1)
    line: Mapped[int]
    full_name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str] = mapped_column(sa.String(20))
    profession: Mapped[str] = mapped_column(sa.String(50))
    organisation: Mapped[str | None] = mapped_column(sa.String(200))
    agb_code: Mapped[str | None] = mapped_column(sa.String(8))
    provider_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="SET NULL")
    )
    #: why registering it failed the last time (in Dutch), if it did
    problem: Mapped[str | None] = mapped_column(sa.String(300))


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
    #: which code it waits for: "sms" (sent to her phone) or "totp" (her authenticator app,
    #: or one of her recovery codes)
    method: Mapped[str] = mapped_column(sa.String(10), default="sms", server_default="sms")


class RecoveryCode(Base):
    """One of the ten one-time codes that stand in for the authenticator app."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class SecondFactorPolicy(Base):
    """A role whose accounts must use the authenticator app (set by a beheerder)."""

    __tablename__ = "second_factor_policy"

    role: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    totp_required: Mapped[bool]
    changed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


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
    #: her role requires the authenticator app and she has none yet: until she sets it up,
    #: this session may do that and nothing else (its principal has the role ENROLLING)
    must_enrol: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
