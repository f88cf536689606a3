"""Clients' own tables: clients (BSN and phone only as keyed hashes), relationships, searches."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from overdracht.db import answers_table, outbox_table


class Base(DeclarativeBase):
    pass


Outbox = outbox_table(Base.metadata)
Answers = answers_table(Base.metadata)


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        sa.UniqueConstraint("birth_date", "bsn_hash", name="uq_clients_birth_date_bsn"),
        sa.Index("ix_clients_birth_date_phone", "birth_date", "phone_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    maiden_name: Mapped[str] = mapped_column(sa.String(100))
    birth_date: Mapped[date]
    bsn_hash: Mapped[str] = mapped_column(sa.String(64))
    phone_hash: Mapped[str] = mapped_column(sa.String(64))
    due_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    created_by: Mapped[uuid.UUID]

    def summary(self) -> dict[str, str]:
        return {"id": str(self.id), "name": self.maiden_name}


class Relationship(Base):
    """A treatment relationship (behandelrelatie) between a provider and a client."""

    __tablename__ = "relationships"
    __table_args__ = (sa.Index("ix_relationships_provider", "provider_id"),)

    client_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    basis: Mapped[str] = mapped_column(sa.String(20))
    established_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: when someone else first placed a document she has not seen (null: nothing new)
    unseen_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: when she last opened the client's documents
    seen_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    #: when she was last told by e-mail that something new waits (at most once an hour)
    notified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Search(Base):
    """Who searched when and whom they found: for the rate limit and for declaring."""

    __tablename__ = "searches"
    __table_args__ = (sa.Index("ix_searches_provider_at", "provider_id", "searched_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)
    provider_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("clients.id", ondelete="CASCADE")
    )
    searched_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
