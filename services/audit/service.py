"""Audit: stores every event exactly once in a hash-chained log; auditors query it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from nameko.timer import timer
from sqlalchemy.orm import Session

from overdracht import config, identifiers, lookup
from overdracht.contracts import (
    ACCESS_DENIED,
    AUDIT_EXPORTED,
    AUDIT_READ,
    AUDITOR,
    CLIENT_CREATED,
    DELIVERED,
    DOCUMENT_DELIVERY,
    DOCUMENT_DOWNLOADED,
    READ_WITHHELD,
    Forbidden,
    InvalidInput,
    Principal,
    make_event,
)
from overdracht.db import Database
from overdracht.entrypoints import check_sender, event_handler, rpc
from overdracht.identity import Identity
from services.audit import chain
from services.audit.checkpoints import ChainBroken
from services.audit.dependencies import Checkpoints
from services.audit.models import AuditRecord, ClientLookup, RejectedEvent

log = logging.getLogger(__name__)

MAX_PAGE = 500
#: the most records one CSV export holds
EXPORT_LIMIT = 20_000
#: the filters a reading of the log records (what she asked for, not what she saw)
FILTERS = ("client_id", "actor", "event", "since", "until", "order")
#: how much of a parked message is kept for the investigation
MAX_PARKED_BYTES = 100_000


class AuditService:
    name = "audit"

    db = Database("audit")
    identity = Identity()
    checkpoints = Checkpoints()

    # A failing handler (database away) requeues its message. One that is malformed, too
    # large, or not published by the service that owns its event name is parked: kept
    # and counted in rejected_events, never stored as a real record.

    @event_handler("auth")
    def handle_auth_event(self, payload: Any, sender: str | None, size: int) -> None:
        self._store("auth", payload, sender, size)

    @event_handler("clients")
    def handle_clients_event(self, payload: Any, sender: str | None, size: int) -> None:
        self._store("clients", payload, sender, size)

    @event_handler("documents")
    def handle_documents_event(self, payload: Any, sender: str | None, size: int) -> None:
        self._store("documents", payload, sender, size)

    @rpc
    def query(self, principal: str, filters: dict, access_point: dict) -> dict:
        """Auditors only: records matching the filters, one page at a time (oldest first,
        or newest first with order=newest). The reading is recorded with them."""
        who = self._auditor(principal, access_point, "audit.query")
        filters = filters if isinstance(filters, dict) else {}
        query, limit = _query(filters)
        with self.db.transaction() as tx:
            records = tx.session.scalars(query.limit(limit + 1)).all()
            page = records[:limit]
            later = _follow_ups(tx.session, page)
            chain.append(tx.session, _reading(AUDIT_READ, who, access_point, filters, len(page)))
        return {
            "events": [_shown(r, later) for r in page],
            "next_cursor": str(page[-1].seq) if len(records) > limit else None,
        }

    @rpc
    def export(self, principal: str, filters: dict, access_point: dict) -> dict:
        """Auditors only: every record matching the filters, newest first, for a CSV file;
        at most EXPORT_LIMIT (then truncated says so). Recorded as audit.exported."""
        who = self._auditor(principal, access_point, "audit.export")
        filters = {**(filters if isinstance(filters, dict) else {}), "order": "newest"}
        filters.pop("cursor", None)
        query, _ = _query({**filters, "limit": 1})
        with self.db.transaction() as tx:
            records = tx.session.scalars(query.limit(EXPORT_LIMIT + 1)).all()
            rows = records[:EXPORT_LIMIT]
            later = _follow_ups(tx.session, rows)
            reading = _reading(AUDIT_EXPORTED, who, access_point, filters, len(rows))
            reading["detail"]["truncated"] = len(records) > EXPORT_LIMIT
            chain.append(tx.session, reading)
        return {
            "events": [_shown(r, later) for r in rows],
            "truncated": len(records) > EXPORT_LIMIT,
        }

    @rpc
    def record_refusal(self, principal: str, action: Any, reason: Any, access_point: dict) -> None:
        """The gateway refused her something itself (a page for another role, a form
        without its CSRF value): recorded as the services record their own refusals."""
        who = self.identity(principal)
        refusal = _denial(who, access_point, str(action)[:64], str(reason)[:32], by="gateway")
        with self.db.transaction() as tx:
            chain.append(tx.session, refusal)

    @rpc
    def find_client(self, principal: str, criteria: dict, access_point: dict) -> dict:
        """Auditors only: the ids of the clients with this birth date and BSN or phone,
        also long after they were removed. Recorded as a reading that names them."""
        who = self._auditor(principal, access_point, "audit.find_client")
        born, bsn, phone = identifiers.search_criteria(criteria)
        query = sa.select(ClientLookup.client_id).where(ClientLookup.birth_date == born)
        wanted = [(k, v) for k, v in (("bsn", bsn), ("phone", phone)) if v]
        for kind, value in wanted:
            query = query.where(
                ClientLookup.client_id.in_(
                    sa.select(ClientLookup.client_id).where(
                        ClientLookup.kind == kind,
                        ClientLookup.hash == lookup.audit_hash(kind, value),
                    )
                )
            )
        with self.db.transaction() as tx:
            found = sorted(set(tx.session.scalars(query.limit(20)).all()))
            reading = make_event(
                AUDIT_READ,
                actor=who.actor(),
                access_point=access_point,
                outcome="found" if found else "not_found",
                detail={"lookup": [k for k, _ in wanted], "client_ids": found},
            )
            chain.append(tx.session, reading)
        return {"client_ids": found}

    def _auditor(self, principal: str, access_point: dict, action: str) -> Principal:
        """The principal, if an auditor's; else the refusal is recorded and raised."""
        who = self.identity(principal)
        if who.role != AUDITOR:
            with self.db.transaction() as tx:
                chain.append(tx.session, _denial(who, access_point, action, "role"))
            raise Forbidden("Alleen auditors lezen het auditlog.", "role")
        return who

    # eager: a (re)started instance signs the head at once; it writes only when the head moved
    @timer(interval=config.get_int("OVERDRACHT_AUDIT_CHECKPOINT_SECONDS"), eager=True)
    def write_checkpoint_on_timer(self) -> None:
        """Sign the chain's head into the checkpoint store outside the database."""
        try:
            with self.db.read() as session:
                checkpoint = self.checkpoints.write(session)
        except ChainBroken as exc:
            # never signed: the chain was changed behind the database's triggers
            log.error("audit chain does not extend its last checkpoint: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("audit checkpoint failed, retrying next interval: %s", type(exc).__name__)
            return
        if checkpoint is not None:
            log.info("audit checkpoint: %(records)s records, head %(head)s", checkpoint)

    def _store(self, source: str, payload: Any, sender: str | None, size: int) -> None:
        try:
            envelope = check_sender(source, sender, size, payload)
        except (ValueError, TypeError) as exc:
            self._park(source, payload, str(exc), sender)
            return
        envelope, identifiers = _take_identifiers(envelope)
        if identifiers is False:  # stored without them; counted for `overdracht audit verify`
            self._park(
                source, {"event_id": envelope["event_id"]}, "identifiers do not open", sender
            )
            identifiers = None
        try:
            with self.db.transaction() as tx:
                if chain.append(tx.session, envelope) and identifiers:
                    _remember(tx.session, envelope["subject"], identifiers)
        except (sa.exc.DataError, sa.exc.IntegrityError, sa.exc.ProgrammingError) as exc:
            # the database will never take this one: park it; a database that is away
            # (Unavailable) raises on, and the message is requeued
            self._park(source, payload, type(exc).__name__, sender)

    def _park(self, source: str, payload: Any, reason: str, sender: str | None = None) -> None:
        log.error("parking a %s event the audit log cannot store: %s", source, reason)
        with self.db.transaction() as tx:
            tx.session.add(
                RejectedEvent(
                    source=source,
                    sender=(sender or "")[:100],
                    reason=reason[:500],
                    payload=json.dumps(payload, default=str)[:MAX_PARKED_BYTES],
                    received_at=datetime.now(UTC),
                )
            )


def _take_identifiers(envelope: dict[str, Any]) -> tuple[dict[str, Any], dict | bool | None]:
    """The envelope as the log keeps it (without the sealed identifiers a client.created
    carries), and those identifiers opened: None if it carried none, False if they do not
    open (another key, or altered)."""
    detail = envelope.get("detail")
    if envelope["event"] != CLIENT_CREATED or not isinstance(detail, dict):
        return envelope, None
    if lookup.FIELD not in detail:
        return envelope, None
    kept = {**envelope, "detail": {k: v for k, v in detail.items() if k != lookup.FIELD}}
    try:
        return kept, lookup.unseal(detail[lookup.FIELD])
    except lookup.SealBroken:
        log.error("a client.created event's identifiers do not open: stored without them")
        return kept, False


def _remember(session: Session, client_id: Any, identifiers: dict[str, str]) -> None:
    """Audit's own keyed hashes of her BSN and phone, with her birth date."""
    born = date.fromisoformat(identifiers["birth_date"])
    now = datetime.now(UTC)
    for kind in ("bsn", "phone"):
        session.add(
            ClientLookup(
                client_id=str(client_id),
                kind=kind,
                birth_date=born,
                hash=lookup.audit_hash(kind, identifiers[kind]),
                recorded_at=now,
            )
        )


def _denial(
    who: Principal, access_point: dict, action: str, reason: str, **more: str
) -> dict[str, Any]:
    """The record of a refusal, as every service writes one."""
    return make_event(
        ACCESS_DENIED,
        actor=who.actor(),
        access_point=access_point,
        outcome="denied",
        detail={"action": action, "reason": reason, **more},
    )


def _reading(
    name: str, who: Principal, access_point: dict, filters: dict, records: int
) -> dict[str, Any]:
    """The record of an auditor reading the log: which filters, how many records."""
    asked = {k: str(filters[k])[:100] for k in FILTERS if filters.get(k)}
    return make_event(
        name,
        actor=who.actor(),
        access_point=access_point,
        detail={"filters": asked, "records": records},
    )


def _query(filters: dict) -> tuple[sa.Select, int]:
    newest = filters.get("order") == "newest"
    if filters.get("order") not in (None, "", "newest", "oldest"):
        raise InvalidInput("order: newest of oldest.", "invalid_order")
    query = sa.select(AuditRecord).order_by(AuditRecord.seq.desc() if newest else AuditRecord.seq)
    if filters.get("client_id"):
        client_id = str(filters["client_id"])
        # a search that found several clients names them in its detail, not as subject
        query = query.where(
            sa.or_(
                AuditRecord.subject == client_id,
                AuditRecord.envelope["detail"]["client_ids"].contains([client_id]),
            )
        )
    if filters.get("actor"):
        query = query.where(AuditRecord.actor_username == str(filters["actor"]).strip().lower())
    if filters.get("event"):
        query = query.where(AuditRecord.event == str(filters["event"]))
    for key, op in (("since", "__ge__"), ("until", "__lt__")):
        if filters.get(key):
            moment = _moment(filters[key], key)
            query = query.where(getattr(AuditRecord.occurred_at, op)(moment))
    if filters.get("cursor"):
        try:
            after = int(filters["cursor"])
            query = query.where(AuditRecord.seq < after if newest else AuditRecord.seq > after)
        except ValueError as exc:
            raise InvalidInput("Ongeldige cursor.", "invalid_cursor") from exc
    try:
        limit = min(int(filters.get("limit") or 100), MAX_PAGE)
    except ValueError as exc:
        raise InvalidInput("Ongeldige limit.", "invalid_limit") from exc
    return query, max(limit, 1)


@dataclass
class FollowUps:
    """What later records say of earlier ones."""

    #: how each download ended: its document.delivery's outcome, by the grant's event_id
    deliveries: dict[str, str]
    #: the reads recorded whose answer was never given (read.withheld names them)
    withheld: set[str]


def _detail_key(key: str) -> sa.ColumnElement[str]:
    # spelt as the indexes on follow-ups spell it (migrations 0003, 0005), so they are used
    return AuditRecord.envelope.op("->")("detail").op("->>", return_type=sa.Text)(key)


def _follow_ups(session: Session, records: Sequence[AuditRecord]) -> FollowUps:
    """The follow-ups of these records.

    A download is granted (document.downloaded) before its first byte; documents records
    how it ended later, naming the grant. The first such record counts. A read whose
    event the broker never confirmed, or whose service died before answering, is named by
    a read.withheld.
    """
    ids = [str(r.event_id) for r in records]
    grants = [str(r.event_id) for r in records if r.event == DOCUMENT_DOWNLOADED]
    outcomes: dict[str, str] = {}
    if grants:
        grant = _detail_key("grant_event_id")
        rows = session.execute(
            sa.select(grant, AuditRecord.outcome)
            .where(AuditRecord.event == DOCUMENT_DELIVERY, grant.in_(grants))
            .order_by(AuditRecord.seq)
        ).all()
        for event_id, outcome in rows:
            outcomes.setdefault(event_id, outcome)
    read = _detail_key("read_event_id")
    withheld = set(
        session.scalars(
            sa.select(read).where(AuditRecord.event == READ_WITHHELD, read.in_(ids))
        ).all()
        if ids
        else ()
    )
    return FollowUps(outcomes, withheld)


def _shown(record: AuditRecord, later: FollowUps) -> dict[str, Any]:
    """A record as the auditor sees it: whether it was withheld, and for a download
    whether it was delivered.

    `delivery` is the outcome of its follow-up (delivered, failed, interrupted), or None
    while there is none: a download without `delivered` recorded was not delivered, nor
    one withheld.
    """
    shown = {**record.envelope, "seq": record.seq, "hash": record.hash}
    shown["withheld"] = str(record.event_id) in later.withheld
    if record.event == DOCUMENT_DOWNLOADED:
        delivery = later.deliveries.get(str(record.event_id))
        shown["delivery"] = delivery
        shown["delivered"] = delivery == DELIVERED and not shown["withheld"]
    return shown


def _moment(value: Any, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(
            "%(field)s: gebruik ISO 8601 (2026-01-31 of 2026-01-31T12:00:00Z).",
            params={"field": key},
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
