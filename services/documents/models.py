"""Documents' own tables: document metadata with its wrapped data key, one-time tickets."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from overdracht.db import answers_table, outbox_table


class Base(DeclarativeBase):
    pass


Outbox = outbox_table(Base.metadata)
Answers = answers_table(Base.metadata)


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(index=True)
    document_type: Mapped[str] = mapped_column(sa.String(40))
    filename: Mapped[str] = mapped_column(sa.String(200))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    removal_date: Mapped[date] = mapped_column(index=True)
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    uploaded_by: Mapped[uuid.UUID]
    uploaded_by_name: Mapped[str] = mapped_column(sa.String(200))
    uploaded_by_profession: Mapped[str | None] = mapped_column(sa.String(50))
    object_key: Mapped[str] = mapped_column(sa.String(200))
    #: the document's data key, encrypted by the master key master_key_id (crypto.py); it
    #: never leaves this service, and removing the row destroys it (crypto-shredding)
    wrapped_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    master_key_id: Mapped[str] = mapped_column(sa.String(64))
    #: SHA-256 and length of the stored object (the ciphertext) as written at upload: a
    #: download of a large document holds the object against them as it reads it once
    #: (service._checked_body). Absent for documents stored before them.
    ciphertext_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    ciphertext_size: Mapped[int | None] = mapped_column(sa.BigInteger)

    def as_dict(self) -> dict:
        return {
            "id": str(self.id),
            "client_id": str(self.client_id),
            "document_type": self.document_type,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "removal_date": self.removal_date.isoformat(),
            "uploaded_at": self.uploaded_at.isoformat(),
            "uploaded_by": self.uploaded_by_name,
            "uploaded_by_profession": self.uploaded_by_profession,
        }


class Ticket(Base):
    """A one-time, short-lived permission to send or fetch one file body over HTTP."""

    __tablename__ = "tickets"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10))  # "upload" or "download"
    document_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID]
    details: Mapped[dict] = mapped_column(JSONB)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PendingRemoval(Base):
    """An object whose document row is gone; removed from the store, retried until it is."""

    __tablename__ = "pending_removals"

    object_key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class SweepSlot(Base):
    """A retention interval whose sweep one instance claimed: the sweep runs once per slot."""

    __tablename__ = "sweep_slots"

    slot: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
