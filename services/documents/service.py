"""Documents: metadata over RPC, file bodies over HTTP with one-time tickets, blobs in S3.

Bodies are encrypted on their way into the object store and decrypted on their way out,
each with its own data key (crypto.py); a body whose stored bytes fail their check is
refused before a byte of it is sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from minio.error import S3Error
from sqlalchemy.dialects.postgresql import insert as pg_insert
from werkzeug.wrappers import Request, Response

from overdracht import config
from overdracht.bus import RpcProxy
from overdracht.contracts import (
    ACCESS_DENIED,
    DELIVERED,
    DELIVERY_FAILED,
    DOCUMENT_DELETED,
    DOCUMENT_DELIVERY,
    DOCUMENT_DOWNLOADED,
    DOCUMENT_EXPIRED,
    DOCUMENT_LISTED,
    DOCUMENT_REMOVAL_DATE_MOVED,
    DOCUMENT_UPLOADED,
    N_,
    SYSTEM_ACTOR,
    TICKET_HEADER,
    ZORGVERLENER,
    Forbidden,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    OverdrachtError,
    Principal,
    Unavailable,
    make_event,
    verify_grant,
)
from overdracht.db import Database
from overdracht.entrypoints import rpc
from overdracht.identity import Identity
from overdracht.timezone import AMSTERDAM, today
from services.documents import crypto, schemas
from services.documents.crypto import IntegrityError, Keys, MissingMasterKey, WrappedKey
from services.documents.delivery import (
    INTEGRITY_FAILURE,
    KEY_UNAVAILABLE,
    NOT_FOUND,
    STORE_UNAVAILABLE,
    Delivery,
    Held,
    HeldBytes,
    in_background,
)
from services.documents.models import (
    Answers,
    Document,
    Outbox,
    PendingRemoval,
    SweepSlot,
    Ticket,
)
from services.documents.storage import Storage
from services.documents.streams import BrokenBody, CappedReader, content_type
from services.documents.transfers import transfer

log = logging.getLogger(__name__)

UPLOAD = "upload"
BAD_TICKET = N_("Ongeldig of verlopen ticket.")
STORE_AWAY = N_("De documentenopslag is niet bereikbaar.")
DOWNLOAD = "download"
DAMAGED = N_("Het document is beschadigd en wordt niet getoond.")
#: documents up to this size are checked and served from one read, held in memory meanwhile
#: (as long as OVERDRACHT_DOWNLOAD_HOLD_MB allows)
INLINE_BYTES = 8 * 1024 * 1024
#: every document body is stored under this prefix; the leftover sweep touches nothing else
OBJECT_PREFIX = "documents/"
LEFTOVER_BATCH = 500


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key_id(key: str) -> uuid.UUID | None:
    """The document id an object key names (`documents/<uuid>`), if it names one."""
    try:
        return uuid.UUID(key.removeprefix(OBJECT_PREFIX))
    except ValueError:
        return None


def _cutoff(value: Any) -> datetime:
    """A moment retention sends (`older_than`): with a time zone, and not yet to come."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Ongeldig tijdstip.") from exc
    if moment.tzinfo is None or moment > datetime.now(UTC):
        raise InvalidInput("Het tijdstip moet een tijdzone hebben en voorbij zijn.")
    return moment


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _document_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound("Document niet gevonden.") from exc


def _id_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _new_ticket(
    kind: str, document_id: uuid.UUID, client_id: uuid.UUID, details: dict
) -> tuple[str, Ticket]:
    """A one-time ticket's token, and its row to add (only the token's hash is stored)."""
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=config.get_int("OVERDRACHT_TICKET_TTL_SECONDS"))
    ticket = Ticket(
        token_hash=_digest(token),
        kind=kind,
        document_id=document_id,
        client_id=client_id,
        details=details,
        expires_at=datetime.now(UTC) + ttl,
    )
    return token, ticket


def _claiming(kind: str, token: str) -> sa.Update:
    """Use a ticket once: the first claim wins, later and late ones get nothing."""
    now = datetime.now(UTC)
    return (
        sa.update(Ticket)
        .where(
            Ticket.token_hash == _digest(token),
            Ticket.kind == kind,
            Ticket.used_at.is_(None),
            Ticket.expires_at > now,
        )
        .values(used_at=now)
        .returning(Ticket)
    )


def _document_object(document: Document) -> dict:
    return {"type": "document", "id": str(document.id), "document_type": document.document_type}


def _client_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _placed_on(document: Document) -> date:
    """The day it was placed, in the Netherlands."""
    return document.uploaded_at.astimezone(AMSTERDAM).date()


def _due_date(client: dict) -> date | None:
    return date.fromisoformat(client["due_date"]) if client["due_date"] else None


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(exc: OverdrachtError) -> Response:
    error = {"code": exc.code, "message": exc.message}
    if exc.params:  # so the gateway can show it in the page's language
        error.update(template=exc.template, params=exc.params)
    return _json(exc.status, {"error": error})


def _cut_on_failure(document_id: uuid.UUID, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """Send plaintext on; a failure after the answer began cuts the connection (and says so)."""
    try:
        yield first
        yield from rest
    except IntegrityError as exc:
        log.error(
            "document %s failed its check while it was sent, connection cut: %s", document_id, exc
        )
        raise
    except Exception as exc:
        log.error("object store failed during a download: %s", type(exc).__name__)
        raise


class DocumentsService:
    name = "documents"

    db = Database("documents", Outbox, Answers)
    identity = Identity()
    storage = Storage()
    keys = Keys()
    held = HeldBytes()
    clients = RpcProxy("clients")

    # --- RPC: metadata --------------------------------------------------------------------

    @rpc
    def begin_upload(
        self, principal: str, client_id: str, fields: dict, access_point: dict
    ) -> dict:
        """Check everything about an upload but its bytes; return a one-time upload ticket."""
        who = self.identity(principal)
        if not isinstance(fields, dict):
            raise InvalidInput("Documentgegevens ontbreken.")
        document_type = schemas.document_type(fields.get("document_type"))
        client = self._authorize(principal, client_id, DOCUMENT_UPLOADED, access_point)
        removal = schemas.removal_date(fields.get("removal_date"), _due_date(client))
        details = {
            "document_type": document_type,
            "removal_date": removal.isoformat(),
            "filename": schemas.filename(fields.get("filename")),
            "actor": who.actor(),
            "uploaded_by_name": who.full_name,
            "uploaded_by_profession": who.profession,
            "access_point": access_point,
        }
        token = self._issue(UPLOAD, uuid.uuid4(), uuid.UUID(client["id"]), details)
        return {"ticket": token}

    @rpc
    def list(self, principal: str, client_id: str, access_point: dict) -> dict:
        """A client's documents, newest first; audited before they are shown."""
        who = self.identity(principal)
        client = self._authorize(principal, client_id, DOCUMENT_LISTED, access_point)
        cid = uuid.UUID(client["id"])
        with self.db.transaction(confirm_events=True) as tx:
            documents = tx.session.scalars(
                sa.select(Document)
                .where(Document.client_id == cid, Document.removal_date > today())
                .order_by(Document.uploaded_at.desc())
            ).all()
            tx.emit(
                make_event(
                    DOCUMENT_LISTED,
                    actor=who.actor(),
                    access_point=access_point,
                    subject=str(cid),
                    detail={"documents": len(documents)},
                )
            )
            due = _due_date(client)
            return tx.answer(
                {
                    "client": client,
                    "documents": [
                        {
                            **d.as_dict(),
                            "may_delete": str(d.uploaded_by) == who.provider_id,
                            # the latest date it may be moved to (from the day it was placed)
                            "removal_max": schemas.removal_bounds(due, placed_on=_placed_on(d))[
                                "max"
                            ],
                        }
                        for d in documents
                    ],
                    "removal_bounds": schemas.removal_bounds(due),
                }
            )

    @rpc
    def begin_download(self, principal: str, document_id: str, access_point: dict) -> dict:
        """Audit the view, then return a one-time ticket for the bytes (fail closed)."""
        who = self._zorgverlener(principal, access_point, DOCUMENT_DOWNLOADED, document_id)
        document = self._current(document_id)
        self._authorize(principal, str(document.client_id), DOCUMENT_DOWNLOADED, access_point)
        grant = make_event(
            DOCUMENT_DOWNLOADED,
            actor=who.actor(),
            access_point=access_point,
            subject=str(document.client_id),
            object=_document_object(document),
        )
        # send_download records how the download ended (document.delivery), naming the grant
        details = {
            "grant_event_id": grant["event_id"],
            "actor": grant["actor"],
            "access_point": grant["access_point"],
            "object": grant["object"],
        }
        token, ticket = _new_ticket(DOWNLOAD, document.id, document.client_id, details)
        # the ticket commits with the grant, but only this reply carries its token: given
        # when the broker confirmed the grant. Not kept for a redelivery (Transaction.answer):
        # the reply is a bearer ticket, and a second run only adds a grant that no delivery
        # follows (shown as not delivered)
        with self.db.transaction(confirm_events=True) as tx:
            tx.emit(grant)
            tx.session.add(ticket)
        return {"ticket": token, **document.as_dict()}

    @rpc
    def delete(self, principal: str, document_id: str, access_point: dict) -> dict:
        """Withdraw a document: only within a relationship, and only its uploader.

        The reply is kept with the removal: handed over again after a crash, the request
        gets it, not a 404 for the document its first run removed.
        """
        who = self._zorgverlener(principal, access_point, DOCUMENT_DELETED, document_id)
        document = self._current(document_id)
        self._authorize(principal, str(document.client_id), DOCUMENT_DELETED, access_point)
        if str(document.uploaded_by) != who.provider_id:
            self._deny(who, access_point, document, "not_uploader")
            raise Forbidden("Alleen wie het document plaatste kan het verwijderen.", "not_uploader")
        reply = {"deleted": str(document.id)}
        self._remove(
            document,
            make_event(
                DOCUMENT_DELETED,
                actor=who.actor(),
                access_point=access_point,
                subject=str(document.client_id),
                object=_document_object(document),
            ),
            reply=reply,
        )
        return reply

    @rpc
    def move_removal_date(
        self, principal: str, document_id: str, removal_date: Any, access_point: dict
    ) -> dict:
        """Move a document's removal date, within the same cap as at upload; audited.

        Any provider with a relationship may: whoever cares for her next may need it longer
        (a birth after the due date) or want it gone sooner.
        """
        who = self._zorgverlener(principal, access_point, DOCUMENT_REMOVAL_DATE_MOVED, document_id)
        document = self._current(document_id)
        client = self._authorize(
            principal, str(document.client_id), DOCUMENT_REMOVAL_DATE_MOVED, access_point
        )
        moved_to = schemas.removal_date(
            removal_date, _due_date(client), placed_on=_placed_on(document)
        )
        with self.db.transaction() as tx:
            # only while it is still there: the sweep may have removed it meanwhile
            before = tx.session.scalar(
                sa.select(Document.removal_date)
                .where(Document.id == document.id, Document.removal_date > today())
                .with_for_update()
            )
            if before is None:
                raise NotFound("Document niet gevonden.")
            earlier = moved_to < before and str(document.uploaded_by) != who.provider_id
            if not earlier and before != moved_to:
                tx.session.execute(
                    sa.update(Document)
                    .where(Document.id == document.id)
                    .values(removal_date=moved_to)
                )
                tx.emit(
                    make_event(
                        DOCUMENT_REMOVAL_DATE_MOVED,
                        actor=who.actor(),
                        access_point=access_point,
                        subject=str(document.client_id),
                        object=_document_object(document),
                        detail={"from": before.isoformat(), "to": moved_to.isoformat()},
                    )
                )
        if earlier:  # sooner is removing it sooner: as deleting, for its uploader only
            self._deny(who, access_point, document, "not_uploader", DOCUMENT_REMOVAL_DATE_MOVED)
            raise Forbidden(
                "Alleen wie het document plaatste kan de verwijderdatum vervroegen; "
                "u kunt hem wel later zetten.",
                "not_uploader",
            )
        document.removal_date = moved_to
        return document.as_dict()

    # --- RPC: retention (system calls) ----------------------------------------------------

    @rpc
    def expire_due(self, system: str, as_of: str, limit: int = 500) -> int:
        """Remove documents whose removal date is on or before as_of; returns how many."""
        self.identity.system(system)
        day = date.fromisoformat(as_of)
        if config.is_production() and day > today():
            raise InvalidInput("In productie verloopt niets vóór zijn verwijderdatum.")
        self._retry_removals()
        removed = 0
        while True:
            with self.db.read() as session:
                due = session.scalars(
                    sa.select(Document)
                    .where(Document.removal_date <= day)
                    .order_by(Document.removal_date, Document.id)
                    .limit(limit)
                ).all()
            for document in due:
                removed += self._remove(
                    document,
                    make_event(
                        DOCUMENT_EXPIRED,
                        actor=SYSTEM_ACTOR,
                        subject=str(document.client_id),
                        object=_document_object(document),
                        detail={"removal_date": document.removal_date.isoformat()},
                    ),
                    due_by=day,
                )
            if len(due) < limit:
                return removed

    @rpc
    def clients_with_documents(self, system: str, client_ids: list[str]) -> list[str]:
        """Which of these clients still have at least one document."""
        self.identity.system(system)
        ids = [uuid.UUID(c) for c in client_ids]
        with self.db.read() as session:
            held = session.scalars(
                sa.select(Document.client_id).where(Document.client_id.in_(ids)).distinct()
            ).all()
        return [str(c) for c in held]

    @rpc
    def claim_sweep(self, system: str, slot: int) -> bool:
        """Whether this retention instance sweeps interval slot: the first to ask does.

        Every retention instance's timer fires once an interval; the sweep runs once.
        Claims older than a week are forgotten on the way.
        """
        self.identity.system(system)
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
            raise InvalidInput("Ongeldig interval.")
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            tx.session.execute(
                sa.delete(SweepSlot).where(SweepSlot.claimed_at < now - timedelta(days=7))
            )
            claimed = tx.session.execute(
                pg_insert(SweepSlot)
                .values(slot=slot, claimed_at=now)
                .on_conflict_do_nothing()
                .returning(SweepSlot.slot)
            ).first()
        return claimed is not None

    @rpc
    def purge_tickets(self, system: str, older_than: str) -> int:
        """Delete tickets that can no longer be used; returns how many.

        A download ticket once spent or expired. An upload ticket once it is no longer live
        (see _uploading): expired, and claimed before older_than if at all, since until
        then it marks an upload that may be under way, whose object the leftover sweep
        leaves alone.
        """
        self.identity.system(system)
        cutoff = _cutoff(older_than)
        now = datetime.now(UTC)
        with self.db.transaction() as tx:
            return tx.session.execute(
                sa.delete(Ticket).where(
                    sa.or_(
                        sa.and_(
                            Ticket.kind != UPLOAD,
                            sa.or_(Ticket.used_at.is_not(None), Ticket.expires_at <= now),
                        ),
                        sa.and_(
                            Ticket.kind == UPLOAD,
                            Ticket.expires_at <= now,
                            sa.or_(Ticket.used_at.is_(None), Ticket.used_at <= cutoff),
                        ),
                    )
                )
            ).rowcount

    @rpc
    def remove_leftovers(self, system: str, older_than: str) -> dict:
        """Abort unfinished multipart uploads and remove objects without a document row.

        Only under documents/, only what began before older_than, and nothing a live upload
        ticket still covers: an upload under way is not a leftover. The store being away is
        one Unavailable; the next sweep tries again.
        """
        self.identity.system(system)
        cutoff = _cutoff(older_than)
        try:
            return {
                "uploads_aborted": self._abort_leftover_uploads(cutoff),
                "leftover_objects": self._remove_leftover_objects(cutoff),
            }
        except OverdrachtError:
            raise
        except Exception as exc:  # noqa: BLE001 - any storage fault: the next sweep retries
            log.error("leftover sweep deferred, object store: %s", type(exc).__name__)
            raise Unavailable(STORE_AWAY) from None

    # --- HTTP: file bodies ----------------------------------------------------------------

    @transfer("PUT", "/internal/uploads")
    def receive_upload(self, request: Request) -> Response:
        """Stream a file body, encrypted with its own data key, into the object store; record it."""
        # the ticket first: without a good one not a byte of the body is read
        try:
            ticket = self._claim(UPLOAD, request.headers.get(TICKET_HEADER, ""))
        except OverdrachtError as exc:
            return _error(exc)
        if ticket is None:
            return _error(NotFound(BAD_TICKET))
        limit = config.get_int("OVERDRACHT_MAX_DOCUMENT_BYTES")
        reader = CappedReader(request.environ["wsgi.input"], limit)
        try:
            head = reader.sniff()
        except BrokenBody as exc:
            return self._cut_off(ticket, reader, exc)
        if not head:
            return _error(
                InvalidInput(
                    "Het bestand is leeg (0 bytes). Kies het bestand opnieuw; is het ook op uw "
                    "computer leeg, sla het dan opnieuw op.",
                    "empty_file",
                )
            )
        kind = content_type(head)
        if kind not in config.content_types():
            reader.drain(limit)
            return _error(
                InvalidInput(
                    "Dit bestandstype is niet toegestaan (PDF, PNG, JPEG, TIFF of DOCX).",
                    "invalid_content_type",
                )
            )
        key = f"documents/{ticket.document_id}"
        data_key, wrapped = self.keys.new_data_key(ticket.document_id)
        encrypted = crypto.EncryptingReader(reader, data_key, ticket.document_id)
        try:
            # what was stored: a large document is held against it when it is read
            stored = self.storage.put(key, encrypted, digest=True)
        except BrokenBody as exc:  # the store aborted the multipart upload it had begun
            return self._cut_off(ticket, reader, exc)
        except OverdrachtError as exc:
            reader.drain(limit)
            return _error(exc)
        except Exception as exc:  # noqa: BLE001 - any storage fault: refuse, keep nothing
            log.error("object store refused an upload: %s", type(exc).__name__)
            reader.drain(limit)
            return _error(Unavailable(STORE_AWAY))
        if request.content_length is not None and reader.size != request.content_length:
            # a body of announced length that ended early (the gateway sends chunked ones,
            # whose cut fails the read above): as cut off, and its object goes
            self._discard(key)
            return self._cut_off(ticket, reader, BrokenBody(N_("Het verzenden is afgebroken.")))
        # checked at begin_upload, checked again: a day may have turned since
        if date.fromisoformat(ticket.details["removal_date"]) <= today():
            self._discard(key)
            return _error(
                InvalidInput("De verwijderdatum moet na vandaag liggen.", "removal_date_not_future")
            )
        details = ticket.details
        document = Document(
            id=ticket.document_id,
            client_id=ticket.client_id,
            document_type=details["document_type"],
            filename=schemas.filename_for(details["filename"], kind),
            content_type=kind,
            size=reader.size,
            sha256=reader.sha256.hexdigest(),
            removal_date=date.fromisoformat(details["removal_date"]),
            uploaded_at=datetime.now(UTC),
            uploaded_by=uuid.UUID(details["actor"]["id"]),
            uploaded_by_name=details["uploaded_by_name"],
            uploaded_by_profession=details.get("uploaded_by_profession"),
            object_key=key,
            wrapped_key=wrapped.wrapped,
            master_key_id=wrapped.master_key_id,
            ciphertext_sha256=stored.sha256,
            ciphertext_size=stored.size,
        )
        try:
            with self.db.transaction() as tx:
                tx.session.add(document)
                tx.emit(
                    make_event(
                        DOCUMENT_UPLOADED,
                        actor=details["actor"],
                        access_point=details["access_point"],
                        subject=str(document.client_id),
                        object=_document_object(document),
                        detail={
                            "size": document.size,
                            "sha256": document.sha256,
                            "content_type": kind,
                            "removal_date": details["removal_date"],
                        },
                    )
                )
        except OverdrachtError as exc:  # the database is away: 503, and no object kept
            self._discard(key)
            return _error(exc)
        except Exception:
            self._discard(key)  # no object without its row
            raise
        return _json(201, document.as_dict())

    @transfer("GET", "/internal/downloads")
    def send_download(self, request: Request) -> Response:
        """Stream a document's bytes, decrypted, once its stored object passed its check.

        How it ended is recorded as `document.delivery`, naming the download's grant: a
        refusal before the first byte as `failed`, the body's end as the Delivery says.
        """
        try:
            with self.db.transaction() as tx:
                ticket = tx.session.scalar(
                    _claiming(DOWNLOAD, request.headers.get(TICKET_HEADER, ""))
                )
                document = ticket and tx.session.get(Document, ticket.document_id)
        except OverdrachtError as exc:  # the database is away
            return _error(exc)
        if ticket is None:
            return _error(NotFound(BAD_TICKET))

        def report(outcome: str, sent: int, reason: str | None) -> None:
            # off the stream's own path: a slow or absent database holds up no byte
            in_background(self._record_delivery, ticket, size, outcome, sent, reason)

        size = 0
        if document is None:
            report(DELIVERY_FAILED, 0, NOT_FOUND)
            return _error(NotFound("Document niet gevonden."))
        size = document.size
        try:
            body = self._checked_body(document)
        except IntegrityError as exc:
            log.error("document %s refused, its stored bytes fail the check: %s", document.id, exc)
            report(DELIVERY_FAILED, 0, INTEGRITY_FAILURE)
            return _error(IntegrityFailure(DAMAGED))
        except MissingMasterKey as exc:
            log.error("document %s cannot be decrypted: %s", document.id, exc)
            report(DELIVERY_FAILED, 0, KEY_UNAVAILABLE)
            return _error(Unavailable())
        except Exception as exc:  # noqa: BLE001 - any storage fault is the same to the reader
            log.error("object store refused a download: %s", type(exc).__name__)
            report(DELIVERY_FAILED, 0, STORE_UNAVAILABLE)
            return _error(Unavailable(STORE_AWAY))
        # eventlet writes each piece before it asks for the next (it would otherwise gather
        # 4 KiB): so the body running out means every byte was written to the gateway
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Response(
            Delivery(body, document.size, report),
            status=200,
            headers={"Content-Length": str(document.size)},
            mimetype=document.content_type,
            direct_passthrough=True,
        )

    # --- helpers --------------------------------------------------------------------------

    def _cut_off(self, ticket: Ticket, reader: CappedReader, exc: BrokenBody) -> Response:
        """An upload whose body stopped: nothing of it is kept, and the gateway is gone."""
        log.warning(
            "upload of document %s cut off after %s bytes, nothing kept: %s",
            ticket.document_id,
            reader.size,
            type(exc.__cause__).__name__ if exc.__cause__ else "ended early",
        )
        return _error(exc)

    def _checked_body(self, document: Document) -> Iterable[bytes]:
        """The document's plaintext: no byte of it unchecked, and never a whole document
        from a stored object that changed.

        Tink authenticates every segment as it decrypts, but the answer's status goes out
        before the later segments are read.
        - A small document is decrypted whole to check it (every segment, the length, the
          SHA-256 recorded at upload) and served from that read, held in memory while it
          is sent, within the process's budget for that (OVERDRACHT_DOWNLOAD_HOLD_MB).
        - A larger one, or a small one the budget has no room for, is read once. Its object
          must have the length written at upload, or it is refused before the answer; the
          first segment is authenticated before the answer, every other one before it is
          sent, and the last piece is held back until the whole object matched the SHA-256
          written at upload. An object changed in a later segment ends in a cut connection
          after authenticated bytes only (and the delivery is recorded as failed), never in
          a whole document.
        - A large document stored before the object's length was recorded is checked
          whole first (the ciphertext's SHA-256, or decrypting it), then read again as it
          is sent, pinned to the checked object by its ETag.
        """
        data_key = self.keys.data_key(
            WrappedKey(document.master_key_id, document.wrapped_key), document.id
        )
        source = self.storage.open(document.object_key)
        stored = (document.ciphertext_sha256, document.ciphertext_size)
        small = document.size <= INLINE_BYTES
        # held in memory: a small document, if the budget has room (given back when the
        # body closes) or if it was stored before its object's length was recorded
        budgeted = small and None not in stored and self.held.take(document.size)
        keep = budgeted or (small and None in stored)
        if not keep and None not in stored:
            if source.length != document.ciphertext_size:
                source.close()
                raise IntegrityError("the stored object's length differs from the one stored")
            chunks = crypto.decrypt_held(data_key, source, document.id, document.size, stored)
            first = next(chunks, b"")  # the first segment is authenticated before the answer
            return _cut_on_failure(document.id, first, chunks)
        etag = source.etag
        if not keep and document.ciphertext_sha256:
            crypto.verify_ciphertext(source, document.size, document.ciphertext_sha256)
        else:
            try:
                kept = crypto.verify(
                    data_key, source, document.id, document.size, document.sha256, keep=keep
                )
            except BaseException:
                if budgeted:
                    self.held.give(document.size)
                raise
            if kept is not None:
                return Held(kept, document.size, self.held) if budgeted else kept
        try:
            again = self.storage.open(document.object_key, etag)
        except S3Error as exc:
            if exc.code == "PreconditionFailed":  # objects are written once: this is tampering
                raise IntegrityError("the stored object changed after its check") from exc
            raise
        chunks = crypto.counted(crypto.decrypt(data_key, again, document.id), document.size)
        first = next(chunks, b"")  # the first segment is authenticated before the answer
        return _cut_on_failure(document.id, first, chunks)

    def _record_delivery(
        self, ticket: Ticket, size: int, outcome: str, sent: int, reason: str | None
    ) -> None:
        """Record how a download ended, naming its grant; never raises (a log line instead).

        A download without this record reads as not delivered, so a database that is away
        now costs the auditor nothing but the reason.
        """
        details = ticket.details or {}
        grant = details.get("grant_event_id")
        if grant is None:  # a ticket issued before downloads were followed up
            return
        detail = {"grant_event_id": grant, "bytes_sent": sent, "size": size}
        if reason is not None:
            detail["reason"] = reason
        event = make_event(
            DOCUMENT_DELIVERY,
            actor=details.get("actor") or SYSTEM_ACTOR,
            access_point=details.get("access_point"),
            subject=str(ticket.client_id),
            object=details.get("object"),
            outcome=outcome,
            detail=detail,
        )
        try:
            # not confirm: the stream is over either way; the outbox relay publishes later
            self.db.record(event, confirm=False)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the grant stays undelivered
            log.error(
                "download of document %s (grant %s) ended %s after %s of %s bytes,"
                " not recorded: %s",
                ticket.document_id,
                grant,
                outcome,
                sent,
                size,
                type(exc).__name__,
            )
            return
        if outcome != DELIVERED:
            log.warning(
                "download of document %s %s after %s of %s bytes (%s)",
                ticket.document_id,
                outcome,
                sent,
                size,
                reason,
            )

    def _authorize(self, principal: str, client_id: str, action: str, access_point: dict) -> dict:
        """Ask clients (within this request's deadline, see overdracht.bus.RpcProxy)."""
        answer = self.clients.authorize(principal, client_id, action, access_point)
        # act only on a grant clients signed for exactly this: whoever else might answer
        # the call on the bus holds no key to forge one
        grant = answer.pop("grant", None) if isinstance(answer, dict) else None
        try:
            if not isinstance(answer, dict) or answer.get("id") != str(_client_uuid(client_id)):
                raise Forbidden("U heeft geen toegang tot deze cliënt.", "no_grant")
            verify_grant(
                grant,
                config.public_key("clients"),
                self.identity(principal),
                answer["id"],
                action,
            )
        except Forbidden:
            log.error("an authorize answer without clients' valid grant was refused")
            raise
        return answer

    def _current(self, document_id: str) -> Document:
        with self.db.read() as session:
            document = session.get(Document, _document_id(document_id))
        if document is None or document.removal_date <= today():
            raise NotFound("Document niet gevonden.")
        return document

    def _remove(
        self, document: Document, event: dict, due_by: date | None = None, reply: Any = None
    ) -> bool:
        """Delete the row, its event, a pending removal and the reply (if any) together; then
        the object.

        With due_by, only while the removal date is still on or before it: a provider may
        have moved it since the sweep looked. If the store is away the object stays listed
        in pending_removals and the next retention sweep removes it: no object outlives its
        row unnoticed. Whether this call removed the row.
        """
        removal = sa.delete(Document).where(Document.id == document.id)
        if due_by is not None:
            removal = removal.where(Document.removal_date <= due_by)
        with self.db.transaction() as tx:
            gone = tx.session.execute(removal).rowcount
            if gone:
                tx.emit(event)
                if reply is not None:
                    tx.answer(reply)
                tx.session.merge(
                    PendingRemoval(object_key=document.object_key, created_at=datetime.now(UTC))
                )
        if gone:  # else someone else removed it, and its object with it, or it was moved
            self._remove_objects([document.object_key])
        return bool(gone)

    def _remove_objects(self, keys: list[str]) -> int:
        """Remove objects from the store and their pending rows; returns how many went."""
        removed = []
        for key in keys:
            try:
                self.storage.remove(key)
            except Exception as exc:  # noqa: BLE001 - stays pending, retried by the next sweep
                log.error("object removal deferred: %s", type(exc).__name__)
                continue
            removed.append(key)
        if removed:
            with self.db.transaction() as tx:
                tx.session.execute(
                    sa.delete(PendingRemoval).where(PendingRemoval.object_key.in_(removed))
                )
        return len(removed)

    def _discard(self, key: str) -> None:
        """Remove an object that never got its row; if the store is away, the sweep will."""
        try:
            self.storage.remove(key)
        except Exception as exc:  # noqa: BLE001 - whatever failed, it must not hide the answer
            log.error("object removal deferred: %s", type(exc).__name__)
            try:
                with self.db.transaction() as tx:
                    tx.session.merge(PendingRemoval(object_key=key, created_at=datetime.now(UTC)))
            except OverdrachtError:
                log.error("object %s left for the leftover sweep: database away too", key)

    def _abort_leftover_uploads(self, cutoff: datetime) -> int:
        stale = [
            (key, upload_id)
            for key, upload_id, initiated in self.storage.unfinished_uploads(OBJECT_PREFIX)
            if initiated is not None and initiated < cutoff
        ]
        aborted = 0
        for batch in _batches(stale, LEFTOVER_BATCH):
            live = self._uploading([key for key, _ in batch], cutoff)
            for key, upload_id in batch:
                if key not in live:
                    self.storage.abort_upload(key, upload_id)
                    aborted += 1
        return aborted

    def _remove_leftover_objects(self, cutoff: datetime) -> int:
        removed = 0
        for batch in _batches(self.storage.objects(OBJECT_PREFIX), LEFTOVER_BATCH):
            keys = [key for key, modified in batch if modified is not None and modified < cutoff]
            kept = self._rowed(keys) | self._uploading(keys, cutoff)
            for key in keys:
                if key not in kept:
                    self.storage.remove(key)
                    removed += 1
        return removed

    def _rowed(self, keys: list[str]) -> set[str]:
        """Which of these object keys a document row names."""
        if not keys:
            return set()
        ids = [i for i in map(_key_id, keys) if i is not None]
        with self.db.read() as session:
            named = session.scalars(
                sa.select(Document.object_key).where(
                    sa.or_(Document.id.in_(ids), Document.object_key.in_(keys))
                )
            ).all()
        return set(named) & set(keys)

    def _uploading(self, keys: list[str], cutoff: datetime) -> set[str]:
        """Which of these keys a live upload ticket covers: unexpired, or claimed since cutoff."""
        ids = {i: key for key in keys if (i := _key_id(key)) is not None}
        if not ids:
            return set()
        with self.db.read() as session:
            live = session.scalars(
                sa.select(Ticket.document_id).where(
                    Ticket.kind == UPLOAD,
                    Ticket.document_id.in_(list(ids)),
                    sa.or_(Ticket.expires_at > datetime.now(UTC), Ticket.used_at > cutoff),
                )
            ).all()
        return {ids[i] for i in live if i in ids}

    def _retry_removals(self, limit: int = 500) -> None:
        with self.db.read() as session:
            keys = session.scalars(
                sa.select(PendingRemoval.object_key)
                .order_by(PendingRemoval.created_at)
                .limit(limit)
            ).all()
        self._remove_objects(list(keys))

    def _issue(self, kind: str, document_id: uuid.UUID, client_id: uuid.UUID, details: dict) -> str:
        token, ticket = _new_ticket(kind, document_id, client_id, details)
        with self.db.transaction() as tx:
            tx.session.add(ticket)
        return token

    def _claim(self, kind: str, token: str) -> Ticket | None:
        with self.db.transaction() as tx:
            return tx.session.scalar(_claiming(kind, token))

    def _zorgverlener(
        self, principal: str, access_point: dict, action: str, document_id: str
    ) -> Principal:
        """Refuse (and audit) any other role before looking the document up: whether an id
        exists is itself nothing another role may learn."""
        who = self.identity(principal)
        if who.role != ZORGVERLENER:
            self.db.record(
                make_event(
                    ACCESS_DENIED,
                    actor=who.actor(),
                    access_point=access_point,
                    object={"type": "document", "id": _id_or_none(document_id)},
                    outcome="denied",
                    detail={"action": action, "reason": "role"},
                )
            )
            raise Forbidden("Alleen zorgverleners werken met cliëntgegevens.", "role")
        return who

    def _deny(
        self,
        who: Principal,
        access_point: dict,
        document: Document,
        reason: str,
        action: str = DOCUMENT_DELETED,
    ) -> None:
        self.db.record(
            make_event(
                ACCESS_DENIED,
                actor=who.actor(),
                access_point=access_point,
                subject=str(document.client_id),
                object=_document_object(document),
                outcome="denied",
                detail={"action": action, "reason": reason},
            )
        )
