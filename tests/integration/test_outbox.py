"""The outbox and the kept replies, on a real PostgreSQL database (the broker faked).

A read's event is published with its withholding waiting beside it: confirmed, the
withholding goes unpublished; not confirmed, or the service died, the relay publishes
both. A reply committed with its work is given once more to a redelivered request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from ops import provision
from overdracht import config, db
from overdracht.contracts import CLIENT_SEARCHED, READ_WITHHELD, Unavailable, make_event
from services.clients.models import Answers, Outbox
from tests.integration.conftest import POSTGRES


class Broker:
    """Takes events; `lose_confirms` makes it take them and then fail to confirm."""

    def __init__(self) -> None:
        self.taken: list[dict] = []
        self.lose_confirms = False

    def publish(self, event: dict) -> None:
        self.taken.append(event)
        if self.lose_confirms:
            raise ConnectionResetError("the broker went away before confirming")


@pytest.fixture
def database(monkeypatch, tmp_path) -> Iterator[tuple[db.Database, Broker]]:
    url = f"{POSTGRES}overdracht_it_clients_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    monkeypatch.setenv("OVERDRACHT_CLIENTS_DB", url)
    config._file_values.cache_clear()
    database = db.Database("clients", Outbox, Answers)
    broker = Broker()
    try:
        provision.create_database(url)
        provision.migrate("clients", url)
        database.engine = db.make_engine(url, poolclass=sa.pool.NullPool)
        database.sessionmaker = sessionmaker(database.engine, expire_on_commit=False)
        database._publish = broker.publish
        yield database, broker
    finally:
        if getattr(database, "engine", None) is not None:
            database.engine.dispose()
        provision.drop_database(url)
        config._file_values.cache_clear()


def _search(database: db.Database, request: str | None = "request-1") -> tuple[dict, dict]:
    """A search as clients runs it: its event and its reply, committed together."""
    event = make_event(CLIENT_SEARCHED, actor={"type": "provider"}, outcome="not_found")
    unit = db.Unit(database, request, time.time() + 10)
    with unit.transaction(confirm_events=True) as tx:
        tx.emit(event)
        reply = tx.answer({"results": []})
    return event, reply


def _outbox(database: db.Database) -> list[dict]:
    with database.sessionmaker() as session:
        return [row.payload for row in session.execute(sa.select(Outbox.c.payload))]


def test_a_confirmed_read_leaves_nothing_and_its_withholding_is_never_published(database):
    database, broker = database
    event, reply = _search(database)
    assert [e["event_id"] for e in broker.taken] == [event["event_id"]]
    assert _outbox(database) == []
    # a redelivery finds the reply, and nothing to withdraw
    assert database.stored_answer("request-1") == reply
    assert database.relay_once(settle=timedelta(0)) == 0


def test_a_read_whose_confirm_is_lost_is_refused_and_recorded_as_withheld(database):
    database, broker = database
    broker.lose_confirms = True
    with pytest.raises(Unavailable):
        _search(database, request=None)
    (read,) = broker.taken  # the broker may well have it: audit may record it as shown
    waiting = _outbox(database)
    assert sorted(e["event"] for e in waiting) == [CLIENT_SEARCHED, READ_WITHHELD]

    broker.lose_confirms = False
    broker.taken.clear()
    assert database.relay_once(settle=timedelta(0)) == 2
    withheld = next(e for e in broker.taken if e["event"] == READ_WITHHELD)
    assert withheld["detail"] == {"read_event_id": read["event_id"], "read": CLIENT_SEARCHED}
    assert withheld["outcome"] == "not_shown"
    assert _outbox(database) == []


def test_a_redelivery_after_the_service_died_gives_the_first_reply_and_keeps_it_shown(database):
    database, broker = database
    broker.lose_confirms = True  # as if it died between committing and publishing
    with pytest.raises(Unavailable):
        _search(database)
    broker.lose_confirms = False
    broker.taken.clear()

    assert database.stored_answer("request-1") == {"results": []}
    # the read is answered after all: its event goes out, its withholding does not
    assert [e["event"] for e in _outbox(database)] == [CLIENT_SEARCHED]
    assert database.relay_once(settle=timedelta(0)) == 1
    assert [e["event"] for e in broker.taken] == [CLIENT_SEARCHED]


def test_a_redelivery_after_the_relay_withheld_the_read_runs_it_again(database):
    database, broker = database
    broker.lose_confirms = True
    with pytest.raises(Unavailable):
        _search(database)
    broker.lose_confirms = False
    assert database.relay_once(settle=timedelta(0)) == 2  # the read stands as withheld

    assert database.stored_answer("request-1") is None  # so its reply is not given now


def test_a_request_without_a_committed_reply_has_none_and_replies_expire(database):
    database, _ = database
    assert database.stored_answer("never seen") is None
    assert database.stored_answer(None) is None
    _search(database)
    with database.sessionmaker.begin() as session:
        session.execute(
            sa.update(Answers).values(expires_at=sa.func.now() - sa.text("interval '1 second'"))
        )
    assert database.purge_answers() == 1
    assert database.stored_answer("request-1") is None
