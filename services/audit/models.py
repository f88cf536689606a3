"""Audit's own tables: the append-only, hash-chained log and the events it could not read."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        sa.Index("ix_audit_subject_seq", "subject", "seq"),
        sa.Index("ix_audit_actor_seq", "actor_username", "seq"),
        sa.Index("ix_audit_event_seq", "event", "seq"),
        sa.Index("ix_audit_occurred_at", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event: Mapped[str] = mapped_column(sa.String(64))
    occurred_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    actor_id: Mapped[str | None] = mapped_column(sa.String(64))
    actor_username: Mapped[str | None] = mapped_column(sa.String(64))
    subject: Mapped[str | None] = mapped_column(sa.String(64))
    outcome: Mapped[str] = mapped_column(sa.String(32))
    envelope: Mapped[dict] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class RejectedEvent(Base):
    """A message the log must not store as real: parked here, never retried, never lost."""

    __tablename__ = "rejected_events"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    sender: Mapped[str] = mapped_column(sa.String(100), server_default="")
    reason: Mapped[str] = mapped_column(sa.String(500))
    payload: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ClientLookup(Base):
    """Audit's own keyed hash of one identifier of one client (overdracht/lookup.py)."""

    __tablename__ = "client_lookups"
    __table_args__ = (sa.Index("ix_client_lookups_find", "birth_date", "kind", "hash"),)

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    birth_date: Mapped[date]
    hash: Mapped[str] = mapped_column(sa.String(64))
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class AuditPurge(Base):
    """One purge of the oldest records (migration 0006): the chain starts again after
    seq_through, its next record linking to `head`; a signed marker in the checkpoint
    store vouches for it."""

    __tablename__ = "audit_purges"

    seq_through: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    head: Mapped[str] = mapped_column(sa.String(64))
    removed: Mapped[int] = mapped_column(sa.BigInteger)
    before: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    purged_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
