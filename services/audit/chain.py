"""The hash chain: each record's hash covers its envelope and the hash before it.

After a purge (services/audit/purge.py) the chain starts again after the last record
removed: the first record kept links to that record's hash, kept in audit_purges.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.audit.models import AuditPurge, AuditRecord

GENESIS = "0" * 64
# one writer at a time extends the chain, whichever audit instance it runs in
CHAIN_LOCK = 7513


def canonical(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, envelope: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(envelope)).hexdigest()


def append(session: Session, envelope: dict[str, Any]) -> bool:
    """Add one envelope at the chain's end; False when its event_id is already there."""
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK)))
    event_id = uuid.UUID(str(envelope["event_id"]))
    if session.scalar(sa.select(AuditRecord.seq).where(AuditRecord.event_id == event_id)):
        return False
    last, prev = head(session)
    seq = last + 1
    actor = envelope.get("actor") or {}
    session.add(
        AuditRecord(
            seq=seq,
            event_id=event_id,
            event=envelope["event"],
            occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
            recorded_at=datetime.now(UTC),
            actor_id=actor.get("id"),
            actor_username=actor.get("username"),
            subject=envelope.get("subject"),
            outcome=envelope.get("outcome") or "",
            envelope=envelope,
            prev_hash=prev,
            hash=link(prev, envelope),
        )
    )
    session.flush()
    return True


def head(session: Session) -> tuple[int, str]:
    """The newest record's seq and hash; after a purge that removed every record, the
    purge's; (0, GENESIS) while the chain is empty."""
    last = session.execute(
        sa.select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    return (last.seq, last.hash) if last else start(session)


def start(session: Session) -> tuple[int, str]:
    """Where the chain begins: after the newest purge, or at the genesis."""
    purge = session.execute(
        sa.select(AuditPurge.seq_through, AuditPurge.head)
        .order_by(AuditPurge.seq_through.desc())
        .limit(1)
    ).first()
    return (purge.seq_through, purge.head) if purge else (0, GENESIS)


def verify(session: Session, batch: int = 1000) -> dict[str, Any]:
    """Walk the whole chain (from where it begins, after any purge); report the first
    record whose hash or link does not hold."""
    after, prev = start(session)
    count = 0
    while True:
        rows = session.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.seq > after)
            .order_by(AuditRecord.seq)
            .limit(batch)
        ).all()
        for record in rows:
            expected_seq = after + 1
            if (
                record.seq != expected_seq
                or record.prev_hash != prev
                or record.hash != link(prev, record.envelope)
            ):
                return {"ok": False, "records": count, "broken_at": record.seq}
            prev, after, count = record.hash, record.seq, count + 1
        if len(rows) < batch:
            return {"ok": True, "records": count, "broken_at": None}
