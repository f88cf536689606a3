"""Clients: the registry of pregnant clients and who is in a treatment relationship with whom."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from overdracht import config, lookup
from overdracht.bus import RpcProxy
from overdracht.contracts import (
    ACCESS_DENIED,
    CLIENT_CREATED,
    CLIENT_DELETED,
    CLIENT_SEARCHED,
    CLIENTS_LISTED,
    DOCUMENT_LISTED,
    DOCUMENT_UPLOADED,
    N_,
    RELATIONSHIP_ESTABLISHED,
    SYSTEM_ACTOR,
    ZORGVERLENER,
    Conflict,
    Forbidden,
    NotFound,
    Principal,
    RateLimited,
    make_event,
    sign_grant,
    sign_system_token,
)
from overdracht.db import Database
from overdracht.entrypoints import check_sender, event_handler, rpc
from overdracht.identity import Identity
from services.clients import schemas
from services.clients.models import Answers, Client, Outbox, Relationship, Search

log = logging.getLogger(__name__)

NOT_ALLOWED = N_("U heeft geen toegang tot deze cliënt.")
CLIENT_EXISTS = N_("Er is al een cliënt met deze geboortedatum en dit BSN. Zoek haar op.")


def _client_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound("Cliënt niet gevonden.") from exc


#: how far back the hourly lookup limit counts
LIMIT_WINDOW = timedelta(hours=1)
#: at most one new-document e-mail per client per provider in this time
NOTICE_INTERVAL = timedelta(hours=1)
#: the most clients Mijn cliënten shows: those with something new first, then the newest
MAX_MINE = 200


def _search_retention() -> timedelta:
    """OVERDRACHT_SEARCH_RETENTION_HOURS, but never shorter than the limit and declaring need."""
    return max(
        timedelta(hours=config.get_int("OVERDRACHT_SEARCH_RETENTION_HOURS")),
        LIMIT_WINDOW,
        timedelta(minutes=config.get_int("OVERDRACHT_RELATIONSHIP_SEARCH_WINDOW_MINUTES")),
    )


class ClientsService:
    name = "clients"

    db = Database("clients", Outbox, Answers)
    identity = Identity()
    auth = RpcProxy("auth")

    @rpc
    def search(self, principal: str, criteria: dict, access_point: dict) -> dict:
        """Exact search: birth date plus BSN and/or phone; audited whether found or not."""
        who = self._zorgverlener(principal, access_point, "client.search")
        born, bsn, phone = schemas.search_criteria(criteria)
        query = sa.select(Client).where(Client.birth_date == born)
        if bsn:
            query = query.where(Client.bsn_hash == self._hash("bsn", bsn))
        if phone:
            query = query.where(Client.phone_hash == self._hash("phone", phone))
        with self.db.transaction(confirm_events=True) as tx:
            limited = not self._within_limit(tx.session, who)
            if not limited:
                found = tx.session.scalars(query.limit(10)).all()
                self._log_lookup(tx.session, who, [c.id for c in found])
                tx.emit(
                    make_event(
                        CLIENT_SEARCHED,
                        actor=who.actor(),
                        access_point=access_point,
                        subject=str(found[0].id) if len(found) == 1 else None,
                        outcome="found" if found else "not_found",
                        detail={
                            "criteria": [k for k, v in (("bsn", bsn), ("phone", phone)) if v],
                            "results": len(found),
                            "client_ids": [str(c.id) for c in found],
                        },
                    )
                )
                reply = tx.answer({"results": [c.summary() for c in found]})
        if limited:
            self._refuse_over_limit(who, access_point, "client.search")
        return reply

    @rpc
    def create(self, principal: str, data: dict, access_point: dict) -> dict:
        """Add a client; the creator has a treatment relationship with her from then on."""
        who = self._zorgverlener(principal, access_point, "client.create")
        fields = schemas.new_client(data)
        client = Client(
            maiden_name=fields["maiden_name"],
            birth_date=fields["birth_date"],
            bsn_hash=self._hash("bsn", fields["bsn"]),
            phone_hash=self._hash("phone", fields["phone"]),
            due_date=fields["due_date"],
            created_at=datetime.now(UTC),
            created_by=uuid.UUID(who.provider_id),
        )
        try:
            with self.db.transaction() as tx:
                # a 409 tells whether she exists: creating counts against the search limit
                limited = not self._within_limit(tx.session, who)
                existing = (
                    None
                    if limited
                    else tx.session.scalar(
                        sa.select(Client.id).where(
                            Client.birth_date == client.birth_date,
                            Client.bsn_hash == client.bsn_hash,
                        )
                    )
                )
                if existing is not None:
                    self._log_lookup(tx.session, who, [existing])
                    tx.emit(self._conflict_event(who, access_point, existing))
                elif not limited:
                    tx.session.add(client)
                    tx.session.flush()
                    tx.session.add(
                        Relationship(
                            client_id=client.id,
                            provider_id=client.created_by,
                            basis="created",
                            established_at=client.created_at,
                        )
                    )
                    self._log_lookup(tx.session, who, [client.id])
                    tx.emit(
                        make_event(
                            CLIENT_CREATED,
                            actor=who.actor(),
                            access_point=access_point,
                            subject=str(client.id),
                            detail={
                                "relationship": "created",
                                "due_date_known": bool(client.due_date),
                                # for the auditor, after she is gone: audit alone opens it
                                lookup.FIELD: lookup.seal(
                                    client.birth_date, fields["bsn"], fields["phone"]
                                ),
                            },
                        )
                    )
                    tx.answer(client.summary())
        except IntegrityError:  # the same client, added at the same moment by someone else
            self.db.record(self._conflict_event(who, access_point, None))
            raise Conflict(CLIENT_EXISTS, "client_exists") from None
        if limited:
            self._refuse_over_limit(who, access_point, "client.create")
        if existing is not None:
            raise Conflict(CLIENT_EXISTS, "client_exists")
        return client.summary()

    @rpc
    def mine(self, principal: str, access_point: dict) -> dict:
        """Mijn cliënten: the clients she has a treatment relationship with (audited).

        Those with a document someone else placed since she last opened them come first,
        marked new. Opening one needs no search and does not count against the limit.
        """
        who = self._zorgverlener(principal, access_point, CLIENTS_LISTED)
        query = (
            sa.select(Client, Relationship)
            .join(Relationship, Relationship.client_id == Client.id)
            .where(Relationship.provider_id == uuid.UUID(who.provider_id))
            .order_by(
                Relationship.unseen_since.desc().nulls_last(),
                Relationship.established_at.desc(),
            )
            .limit(MAX_MINE)
        )
        with self.db.transaction(confirm_events=True) as tx:
            rows = tx.session.execute(query).all()
            if rows:  # names shown are client data: who saw whose, like a search
                tx.emit(
                    make_event(
                        CLIENTS_LISTED,
                        actor=who.actor(),
                        access_point=access_point,
                        detail={
                            "results": len(rows),
                            "client_ids": [str(client.id) for client, _ in rows],
                        },
                    )
                )
            return tx.answer(
                {
                    "clients": [
                        {
                            **client.summary(),
                            "birth_date": client.birth_date.isoformat(),
                            "due_date": client.due_date.isoformat() if client.due_date else None,
                            "new_since": (
                                related.unseen_since.isoformat() if related.unseen_since else None
                            ),
                        }
                        for client, related in rows
                    ]
                }
            )

    @rpc
    def declare_relationship(self, principal: str, client_id: str, access_point: dict) -> dict:
        """Declare a treatment relationship with a client this provider just found."""
        who = self._zorgverlener(principal, access_point, "relationship.declare")
        cid = _client_id(client_id)
        window = timedelta(minutes=config.get_int("OVERDRACHT_RELATIONSHIP_SEARCH_WINDOW_MINUTES"))
        pid = uuid.UUID(who.provider_id)
        with self.db.transaction() as tx:
            client = tx.session.get(Client, cid)
            if client is None:
                raise NotFound("Cliënt niet gevonden.")
            existing = tx.session.get(Relationship, (cid, pid))
            if existing is not None:
                return {**client.summary(), "established_at": existing.established_at.isoformat()}
            found_recently = tx.session.scalar(
                sa.select(sa.func.count(Search.id)).where(
                    Search.provider_id == pid,
                    Search.client_id == cid,
                    Search.searched_at >= datetime.now(UTC) - window,
                )
            )
            if not found_recently:
                denied = True
            else:
                denied = False
                established_at = datetime.now(UTC)
                # a double click declares twice: the second one finds the first's row
                inserted = tx.session.execute(
                    pg_insert(Relationship)
                    .values(
                        client_id=cid,
                        provider_id=pid,
                        basis="declared",
                        established_at=established_at,
                    )
                    .on_conflict_do_nothing()
                ).rowcount
            if not denied and inserted:
                tx.emit(
                    make_event(
                        RELATIONSHIP_ESTABLISHED,
                        actor=who.actor(),
                        access_point=access_point,
                        subject=str(cid),
                        detail={"basis": "declared"},
                    )
                )
        if denied:
            self._deny(who, access_point, "relationship.declare", str(cid), "not_found_by_search")
            raise Forbidden("Zoek de cliënt eerst op en controleer haar naam.", "search_first")
        return {**client.summary(), "established_at": established_at.isoformat()}

    @rpc
    def authorize(self, principal: str, client_id: str, action: str, access_point: dict) -> dict:
        """Allow a document action only within a treatment relationship; else deny, audited."""
        self.identity(principal)  # before anything else, even reading the arguments
        cid = _client_id(client_id)
        who = self._zorgverlener(principal, access_point, action, str(cid))
        with self.db.transaction() as tx:
            client = tx.session.get(Client, cid)
            related = client is not None and tx.session.get(
                Relationship, (cid, uuid.UUID(who.provider_id))
            )
            if related and action == DOCUMENT_LISTED:
                related.seen_at = datetime.now(UTC)
                related.unseen_since = None  # she opens the list: nothing is new any more
        if client is None:
            raise NotFound("Cliënt niet gevonden.")
        if not related:
            self._deny(who, access_point, action, str(cid), "no_relationship")
            raise Forbidden(NOT_ALLOWED, "no_relationship")
        return {
            **client.summary(),
            "due_date": client.due_date.isoformat() if client.due_date else None,
            "grant": sign_grant(who, str(cid), action, config.private_key("clients")),
        }

    # --- documents placed: mark them new for the others, and have them told ---------------

    @event_handler("documents", DOCUMENT_UPLOADED)
    def on_document_uploaded(self, payload: Any, sender: str | None, size: int) -> None:
        """Someone placed a document: new for everyone else in a relationship with her.

        Each of them gets an e-mail (through auth, which knows their addresses), at most
        one per client an hour. The marks and the times of the mails are committed first
        (no row stays locked while mail goes out); a notice that then fails is logged and
        not sent again: the mark on Mijn cliënten is what she relies on. An event that
        comes late or twice marks nothing she has seen since it was placed.
        """
        try:
            event = check_sender("documents", sender, size, payload)
            client_id = uuid.UUID(str(event["subject"]))
            uploader = uuid.UUID(str(event["actor"]["id"]))
        except (ValueError, TypeError, KeyError) as exc:
            log.error("a document.uploaded event was ignored: %s", exc)
            return
        if event["event"] != DOCUMENT_UPLOADED:
            return
        placed_at = datetime.fromisoformat(event["occurred_at"])
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            others = tx.session.scalars(
                sa.select(Relationship)
                .where(Relationship.client_id == client_id, Relationship.provider_id != uploader)
                .with_for_update()
            ).all()
            due = []
            for related in others:
                if related.seen_at is not None and related.seen_at >= placed_at:
                    continue  # she opened the client after it was placed
                if related.unseen_since is None:
                    related.unseen_since = placed_at
                if related.notified_at is None or related.notified_at <= now - NOTICE_INTERVAL:
                    related.notified_at = now
                    due.append(str(related.provider_id))
        if not due:
            return
        token = sign_system_token(
            "clients", config.private_key("clients"), call="auth.notify_new_documents"
        )
        try:
            self.auth.notify_new_documents(token, due)
        except Exception as exc:  # noqa: BLE001 - marked already; the mail is a courtesy
            log.warning("new-document notices not sent: %s", type(exc).__name__)

    # --- retention (system calls, no client data leaves) ---------------------------------

    @rpc
    def deletion_candidates(
        self, system: str, created_before: str, after: str | None, limit: int
    ) -> list[str]:
        """Ids of clients created before a moment, in id order, one page at a time."""
        self.identity.system(system)
        query = sa.select(Client.id).where(
            Client.created_at < datetime.fromisoformat(created_before)
        )
        if after:
            query = query.where(Client.id > uuid.UUID(after))
        with self.db.read() as session:
            ids = session.scalars(query.order_by(Client.id).limit(min(int(limit), 1000))).all()
        return [str(i) for i in ids]

    @rpc
    def delete_clients(self, system: str, client_ids: list[str], reason: str) -> int:
        """Remove clients (with their relationships and searches); audited one by one."""
        self.identity.system(system)
        ids = [uuid.UUID(c) for c in client_ids]
        with self.db.transaction() as tx:
            deleted = tx.session.scalars(
                sa.delete(Client).where(Client.id.in_(ids)).returning(Client.id)
            ).all()
            for cid in deleted:
                tx.emit(
                    make_event(
                        CLIENT_DELETED,
                        actor=SYSTEM_ACTOR,
                        subject=str(cid),
                        detail={"reason": reason},
                    )
                )
        return len(deleted)

    @rpc
    def purge_searches(self, system: str) -> int:
        """Delete lookups older than the search retention; returns how many.

        They serve the hourly limit and declaring a relationship only (the audit log is
        the record of who searched), so they are kept at least as long as those look back.
        """
        self.identity.system(system)
        with self.db.transaction() as tx:
            return tx.session.execute(
                sa.delete(Search).where(
                    Search.searched_at < datetime.now(UTC) - _search_retention()
                )
            ).rowcount

    # --- helpers -------------------------------------------------------------------------

    def _hash(self, kind: str, value: str) -> str:
        return schemas.keyed_hash(bytes.fromhex(config.get("OVERDRACHT_PEPPER")), kind, value)

    def _zorgverlener(
        self, principal: str, access_point: dict, action: str, client_id: str | None = None
    ) -> Principal:
        who = self.identity(principal)
        if who.role != ZORGVERLENER:
            self._deny(who, access_point, action, client_id, "role")
            raise Forbidden("Alleen zorgverleners werken met cliëntgegevens.", "role")
        return who

    def _within_limit(self, session: Session, who: Principal) -> bool:
        """Under the hourly lookup limit; serialised per provider, so it cannot be raced."""
        provider = uuid.UUID(who.provider_id)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(provider.int & (2**63 - 1))))
        recent = session.scalar(
            sa.select(sa.func.count(sa.distinct(Search.searched_at))).where(
                Search.provider_id == provider,
                Search.searched_at >= datetime.now(UTC) - LIMIT_WINDOW,
            )
        )
        return recent < config.get_int("OVERDRACHT_SEARCH_LIMIT_PER_HOUR")

    def _log_lookup(self, session: Session, who: Principal, client_ids: list[uuid.UUID]) -> None:
        """One lookup (one moment), with whom it found: for the limit and for declaring."""
        now = datetime.now(UTC)
        for client_id in client_ids or [None]:
            session.add(
                Search(provider_id=uuid.UUID(who.provider_id), client_id=client_id, searched_at=now)
            )

    def _refuse_over_limit(self, who: Principal, access_point: dict, action: str) -> None:
        self._deny(who, access_point, action, None, "rate_limited")
        raise RateLimited("Te veel zoekopdrachten; probeer het over een uur opnieuw.")

    def _conflict_event(
        self, who: Principal, access_point: dict, existing: uuid.UUID | None
    ) -> dict:
        # her existence is client data too: the refused attempt is audited, naming her
        return make_event(
            CLIENT_CREATED,
            actor=who.actor(),
            access_point=access_point,
            subject=str(existing) if existing else None,
            outcome="conflict",
            detail={"reason": "client_exists"},
        )

    def _deny(
        self,
        who: Principal,
        access_point: dict,
        action: str,
        client_id: str | None,
        reason: str,
    ) -> None:
        self.db.record(
            make_event(
                ACCESS_DENIED,
                actor=who.actor(),
                access_point=access_point,
                subject=client_id,
                outcome="denied",
                detail={"action": action, "reason": reason},
            )
        )
