"""Each service's own database, with a transactional outbox for its events.

A state change and the event that reports it are written in one transaction (the
outbox row), then published with broker confirms. A relay in every service instance
publishes whatever an earlier attempt left behind, so no event is lost when the broker
is away for a while. Reads of client data publish their audit event before they answer
and fail closed when the broker does not confirm it.

A read's event goes into the outbox with its withholding (`read.withheld`, naming it):
once the broker confirms the read's event, the withholding is deleted unpublished; if the
confirm never comes (the broker went away, perhaps after it took the event) or the
process dies first, the relay publishes both, and the audit log says the read was not
shown. A broker redelivers a request whose service died after committing and before
replying: the reply, committed with the work (`Transaction.answer`), is given again
instead of doing the work twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import eventlet
import sqlalchemy as sa
from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.standalone.events import get_event_exchange
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from overdracht import config
from overdracht.bus import REQUEST, deadline_of, remaining, rpc_timeout, uri_parts
from overdracht.contracts import READ_WITHHELD, Unavailable, make_event

log = logging.getLogger(__name__)


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    """The outbox every publishing service keeps in its own database."""
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def answers_table(metadata: sa.MetaData) -> sa.Table:
    """Replies to requests whose work committed, kept until their callers stop waiting.

    `withheld` lists the withholdings still in the outbox with the work: a reply given
    again must not be recorded as withheld, so they are deleted before it is given.
    """
    return sa.Table(
        "answers",
        metadata,
        sa.Column("request", sa.String(64), primary_key=True),
        sa.Column("reply", JSONB, nullable=False),
        sa.Column("withheld", JSONB, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def withholding(event: dict[str, Any]) -> dict[str, Any]:
    """The follow-up saying a read's answer was never given; published only if so."""
    return make_event(
        READ_WITHHELD,
        actor=event["actor"],
        access_point=event["access_point"],
        subject=event["subject"],
        object=event["object"],
        outcome="not_shown",
        detail={"read_event_id": event["event_id"], "read": event["event"]},
    )


_NO_REPLY = object()


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    # hide_parameters: a failed statement's values (hashes, names) stay out of the logs
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


class Transaction:
    """One unit of work: a session plus the events that commit with it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[dict[str, Any]] = []
        self.reply: Any = _NO_REPLY

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def answer(self, reply: Any) -> Any:
        """Commit the request's reply with its work, and return it.

        Should the service die before the reply is sent, the broker hands the request to
        another instance, which gives this reply instead of doing the work again. None
        is no reply to keep (it would read as "nothing kept").
        """
        if reply is None:
            raise ValueError("a kept reply cannot be None")
        self.reply = reply
        return reply


class Unit:
    """What an entrypoint sees as `self.db`."""

    def __init__(
        self, provider: Database, request: str | None = None, deadline: float | None = None
    ) -> None:
        self._provider = provider
        self._request = request
        self._deadline = deadline

    def time_left(self) -> float:
        """Seconds until the caller stops waiting (the RPC timeout outside a request)."""
        return remaining(self._deadline)

    @contextmanager
    def transaction(self, confirm_events: bool = False) -> Iterator[Transaction]:
        """Commit the work and its events together, then publish the events.

        With confirm_events, the caller is answering a read of client data: if the
        broker does not confirm the audit event, raise Unavailable so nothing is shown,
        and leave the event's withholding for the relay.
        """
        provider = self._provider
        session = provider.sessionmaker()
        tx = Transaction(session)
        withheld: list[dict[str, Any]] = []
        try:
            with session.begin():
                yield tx
                if confirm_events:
                    withheld = [withholding(e) for e in tx.events]
                if tx.events:
                    session.execute(sa.insert(provider.outbox), outbox_rows(tx.events + withheld))
                if tx.reply is not _NO_REPLY and self._request is not None:
                    provider.keep_answer(session, self._request, self._deadline, tx.reply, withheld)
        except sa.exc.OperationalError as exc:
            raise _database_away(exc) from exc
        finally:
            session.close()
        if tx.events:
            try:
                provider.publish(tx.events, withheld, self._request)
            except Exception as exc:
                if confirm_events:
                    log.error("audit event not confirmed by the broker: %s", type(exc).__name__)
                    raise Unavailable(
                        "De actie kon niet worden vastgelegd; probeer het later opnieuw.",
                    ) from exc
                log.warning("event publish deferred to the outbox relay: %s", type(exc).__name__)

    def record(self, event: dict[str, Any], confirm: bool = True) -> None:
        """Commit one event on its own: an access denial, a refused attempt."""
        with self.transaction(confirm_events=confirm) as tx:
            tx.emit(event)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads that change nothing."""
        session = self._provider.sessionmaker()
        try:
            yield session
        except sa.exc.OperationalError as exc:
            raise _database_away(exc) from exc
        finally:
            session.close()  # detaches what was read without expiring it


def _database_away(exc: Exception) -> Unavailable:
    log.error("database unavailable: %s", type(exc).__name__)
    return Unavailable()


def outbox_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outbox rows for events, to insert in the same transaction as the change they report."""
    now = datetime.now(UTC)
    return [
        {"event_id": e["event_id"], "name": e["event"], "payload": e, "created_at": now}
        for e in events
    ]


class Database(DependencyProvider):
    """A session factory on the service's own database, and its event outbox."""

    def __init__(
        self, service: str, outbox: sa.Table | None = None, answers: sa.Table | None = None
    ) -> None:
        self.service = service
        self.outbox = outbox
        self.answers = answers
        self._running = False
        self._relay: Any = None

    def setup(self) -> None:
        if eventlet.patcher.is_monkey_patched("socket"):
            from psycogreen.eventlet import patch_psycopg

            patch_psycopg()
        pool = config.get_int("OVERDRACHT_DB_POOL_SIZE")
        self.engine = make_engine(config.database_url(self.service), pool_size=pool, max_overflow=5)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        if self.outbox is not None:
            self.exchange = get_event_exchange(self.service, self.container.config)
            # mandatory: an event no queue is bound for is an error, not a silent drop
            amqp_uri = self.container.config["AMQP_URI"]
            # user_id is checked by the broker against our login: audit trusts it as the sender
            self.sender = uri_parts(amqp_uri)[0]
            self.publisher = Publisher(
                amqp_uri,
                ssl=self.container.config.get("AMQP_SSL"),
                use_confirms=True,
                mandatory=True,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )

    def start(self) -> None:
        self._running = True
        self._relay = None
        if self.outbox is not None:
            self._relay = self.container.spawn_managed_thread(
                self._relay_forever, identifier="outbox-relay"
            )

    def stop(self) -> None:
        self._end_relay()
        self.engine.dispose()

    def kill(self) -> None:
        self._end_relay()

    def _end_relay(self) -> None:
        # ending it ourselves, between two rounds, spares nameko killing it mid-sleep
        self._running = False
        if self._relay is not None:
            self._relay.kill()
            self._relay = None

    def get_dependency(self, worker_ctx: Any) -> Unit:
        # only an RPC request has a key the service set itself (see bus.REQUEST)
        data = worker_ctx.context_data if isinstance(worker_ctx.entrypoint, Rpc) else {}
        return Unit(self, data.get(REQUEST), deadline_of(data))

    def publish(
        self,
        events: list[dict[str, Any]],
        withheld: Sequence[dict[str, Any]] = (),
        request: str | None = None,
    ) -> None:
        """Publish with confirms, then drop the outbox rows of what the broker took, and
        the withholdings of those events unpublished: the reads they name are answered."""
        ids = [e["event_id"] for e in (*events, *withheld)]
        with self.sessionmaker.begin() as session:
            # the relay skips rows locked here, so it cannot publish a withholding while
            # the broker is about to confirm its read
            session.execute(
                sa.select(self.outbox.c.event_id)
                .where(self.outbox.c.event_id.in_(ids))
                .with_for_update()
            )
            for event in events:
                self._publish(event)
            session.execute(sa.delete(self.outbox).where(self.outbox.c.event_id.in_(ids)))
            if withheld and request is not None and self.answers is not None:
                self._settled(session, request)

    def _publish(self, event: dict[str, Any]) -> None:
        self.publisher.publish(
            event, exchange=self.exchange, routing_key=event["event"], user_id=self.sender
        )

    def keep_answer(
        self,
        session: Session,
        request: str,
        deadline: float | None,
        reply: Any,
        withheld: list[dict[str, Any]],
    ) -> None:
        """Store a request's reply in the transaction that did its work."""
        if self.answers is None:
            raise RuntimeError(f"{self.service} keeps no answers")
        expires = deadline if deadline is not None else time.time() + rpc_timeout()
        values = {
            "reply": reply,
            "withheld": [e["event_id"] for e in withheld],
            "expires_at": datetime.fromtimestamp(expires, UTC),
        }
        session.execute(
            pg_insert(self.answers)
            .values(request=request, **values)
            .on_conflict_do_update(index_elements=["request"], set_=values)
        )

    def stored_answer(self, request: str | None) -> Any:
        """The reply a redelivered request's first run committed, or None to run it again.

        Its withholdings are deleted first: the read is answered after all. If the relay
        published them already, the read stands as not shown and the request runs again.
        """
        if self.answers is None or request is None:
            return None
        with self.sessionmaker.begin() as session:
            row = session.execute(
                sa.select(self.answers.c.reply, self.answers.c.withheld)
                .where(self.answers.c.request == request)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if row.withheld:
                # waits for a relay that holds them, and then finds them gone
                left = session.scalars(
                    sa.select(self.outbox.c.event_id)
                    .where(self.outbox.c.event_id.in_(row.withheld))
                    .with_for_update()
                ).all()
                if len(left) != len(row.withheld):
                    return None
                session.execute(
                    sa.delete(self.outbox).where(self.outbox.c.event_id.in_(row.withheld))
                )
                self._settled(session, request)
            return row.reply

    def _settled(self, session: Session, request: str) -> None:
        """The kept reply's withholdings are gone unpublished: its read was answered."""
        session.execute(
            sa.update(self.answers).where(self.answers.c.request == request).values(withheld=[])
        )

    def purge_answers(self) -> int:
        """Drop replies nobody can ask for again: their callers stopped waiting."""
        if self.answers is None:
            return 0
        with self.sessionmaker.begin() as session:
            return session.execute(
                sa.delete(self.answers).where(self.answers.c.expires_at < datetime.now(UTC))
            ).rowcount

    def relay_once(self, settle: timedelta = timedelta(seconds=2)) -> int:
        """Publish events whose inline publish failed; several instances may run this."""
        cutoff = datetime.now(UTC) - settle
        with self.sessionmaker.begin() as session:
            rows = session.execute(
                sa.select(self.outbox.c.payload)
                .where(self.outbox.c.created_at < cutoff)
                .order_by(self.outbox.c.created_at)
                .limit(200)
                .with_for_update(skip_locked=True)
            ).all()
            for (payload,) in rows:
                self._publish(payload)
            if rows:
                session.execute(
                    sa.delete(self.outbox).where(
                        self.outbox.c.event_id.in_([r.payload["event_id"] for r in rows])
                    )
                )
        return len(rows)

    def _relay_forever(self) -> None:
        interval = config.get_int("OVERDRACHT_OUTBOX_RELAY_SECONDS")
        while self._running:
            eventlet.sleep(interval)
            try:
                self.relay_once()
                self.purge_answers()
            except Exception as exc:  # noqa: BLE001 - the relay must outlive broker and db faults
                log.warning("outbox relay failed, will retry: %s", type(exc).__name__)


# --- migrations ------------------------------------------------------------------------


def run_alembic_env(metadata: sa.MetaData) -> None:
    """Body of every service's migrations/env.py."""
    from alembic import context

    url = context.config.attributes.get("url") or config.database_owner_url(
        Path(context.config.get_main_option("script_location")).parent.name
    )
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
