"""Audit records are kept OVERDRACHT_AUDIT_RETENTION_YEARS (at least five), then purged.

Document retention does not touch the log: a client's records outlive her documents.
The operator purges (`overdracht audit purge`) as the audit database's owner: the
runtime role cannot remove a record, and the owner only inside a purge's transaction and
only the records up to the seq it names (migration 0006). A purge

1. holds the whole log against its checkpoints first, and removes nothing from a log
   that does not hold (that would destroy the evidence);
2. takes the oldest records recorded before the cutoff, as one run from the chain's start
   (the chain then starts again after the last of them);
3. signs a marker (that seq, and its hash) into the checkpoint store before anything is
   removed, so verification can tell this purge from someone deleting records;
4. removes the run, and the auditor's lookups of clients no kept record names, notes the
   purge in audit_purges and appends `audit.purged` to the chain, in one transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from overdracht.contracts import AUDIT_PURGED, OPERATOR_ACTOR, make_event
from services.audit import chain
from services.audit.checkpoints import CheckpointStore, sign_purge, verify_against
from services.audit.models import AuditPurge, AuditRecord, ClientLookup

#: the least the log is kept (NEN 7513 asks for five years)
MIN_YEARS = 5


class PurgeRefused(Exception):
    """Nothing was removed, and why."""


def cutoff(as_of: date, years: int) -> datetime:
    """The moment before which records may go: `years` before as_of (midnight, UTC)."""
    if years < MIN_YEARS:
        raise PurgeRefused(f"audit records are kept at least {MIN_YEARS} years, not {years}")
    try:
        day = as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February, in a year without one
        day = date(as_of.year - years, 3, 1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def purge(
    session: Session, store: CheckpointStore, key: Ed25519PrivateKey, before: datetime
) -> dict[str, Any]:
    """Remove the records recorded before `before` (see the module); commit is the
    caller's. Raises PurgeRefused, having removed nothing, when the log does not hold."""
    # one writer at a time, as chain.append: the audit service waits meanwhile
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(chain.CHAIN_LOCK)))
    checked = verify_against(session, store, key.public_key())
    if not checked["ok"]:
        raise PurgeRefused("the log does not hold: " + "; ".join(checked["problems"]))
    start, _ = chain.start(session)
    newest, _ = chain.head(session)
    first_kept = session.scalar(
        sa.select(sa.func.min(AuditRecord.seq)).where(AuditRecord.recorded_at >= before)
    )
    through = newest if first_kept is None else first_kept - 1
    if through <= start:
        return {"removed": 0, "through": start, "before": before.isoformat(), "lookups": 0}
    head = session.scalar(sa.select(AuditRecord.hash).where(AuditRecord.seq == through))
    store.append(sign_purge(through, head, key))
    session.execute(
        sa.select(sa.func.set_config("overdracht.audit_purge_through", str(through), True))
    )
    removed = session.execute(sa.delete(AuditRecord).where(AuditRecord.seq <= through)).rowcount
    named = sa.select(AuditRecord.seq).where(AuditRecord.subject == ClientLookup.client_id)
    lookups = session.execute(
        sa.delete(ClientLookup).where(ClientLookup.recorded_at < before, ~named.exists())
    ).rowcount
    session.add(
        AuditPurge(
            seq_through=through,
            head=head,
            removed=removed,
            before=before,
            purged_at=datetime.now(UTC),
        )
    )
    session.flush()
    summary = {
        "removed": removed,
        "through": through,
        "before": before.isoformat(),
        "lookups": lookups,
    }
    chain.append(session, make_event(AUDIT_PURGED, actor=OPERATOR_ACTOR, detail=summary))
    return summary
