"""Each service's own database, with a transactional outbox for its events.

A state change and the event that reports it are written in one transaction (the
outbox row), then published with broker confirms. A relay in every service instance
publishes whatever an earlier attempt left behind, so no event is lost when the broker
is away for a while. Reads of client data publish their audit event before they answer
and fail closed when the broker does not confirm it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import eventlet
import sqlalchemy as sa
from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from overdracht import config
from overdracht.bus import uri_parts
from overdracht.contracts import Unavailable

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


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    # hide_parameters: a failed statement's values (hashes, names) stay out of the logs
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


class Transaction:
    """One unit of work: a session plus the events that commit with it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class Unit:
    """What an entrypoint sees as `self.db`."""

    def __init__(self, provider: Database) -> None:
        self._provider = provider

    @contextmanager
    def transaction(self, confirm_events: bool = False) -> Iterator[Transaction]:
        """Commit the work and its events together, then publish the events.

        With confirm_events, the caller is answering a read of client data: if the
        broker does not confirm the audit event, raise Unavailable so nothing is shown.
        """
        provider = self._provider
        session = provider.sessionmaker()
        tx = Transaction(session)
        try:
            with session.begin():
                yield tx
                if tx.events:
                    session.execute(sa.insert(provider.outbox), outbox_rows(tx.events))
        except sa.exc.OperationalError as exc:
            raise _database_away(exc) from exc
        finally:
            session.close()
        if tx.events:
            try:
                provider.publish(tx.events)
            except Exception as exc:
                if confirm_events:
                    log.error("audit event not confirmed by the broker: %s", type(exc).__name__)
                    provider.mark_not_shown(tx.events)
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

    def __init__(self, service: str, outbox: sa.Table | None = None) -> None:
        self.service = service
        self.outbox = outbox
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
        return Unit(self)

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Publish with confirms, then drop the outbox rows of what the broker took."""
        for event in events:
            self._publish(event)
        with self.sessionmaker.begin() as session:
            session.execute(
                sa.delete(self.outbox).where(
                    self.outbox.c.event_id.in_([e["event_id"] for e in events])
                )
            )

    def _publish(self, event: dict[str, Any]) -> None:
        self.publisher.publish(
            event, exchange=self.exchange, routing_key=event["event"], user_id=self.sender
        )

    def mark_not_shown(self, events: list[dict[str, Any]]) -> None:
        """A read refused for want of a confirm: the relay must not record it as shown."""
        try:
            with self.sessionmaker.begin() as session:
                for event in events:
                    payload = {
                        **event,
                        "outcome": "not_shown",
                        "detail": {**event["detail"], "reason": "broker_unavailable"},
                    }
                    session.execute(
                        sa.update(self.outbox)
                        .where(self.outbox.c.event_id == event["event_id"])
                        .values(payload=payload)
                    )
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not mark unconfirmed events: %s", type(exc).__name__)

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
