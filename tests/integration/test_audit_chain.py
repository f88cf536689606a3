"""The audit hash chain on a real PostgreSQL: append, verify, refuse changes, detect tampering."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from overdracht.contracts import (
    CLIENT_CREATED,
    CLIENT_SEARCHED,
    DOCUMENT_DOWNLOADED,
    DOCUMENT_UPLOADED,
    PROVIDER_LOGGED_IN,
    make_event,
)
from services.audit import chain
from services.audit.models import AuditRecord

ACTOR = {"type": "provider", "id": "p-1", "username": "verlos-anna", "role": "zorgverlener"}


def _events(count: int) -> list[dict]:
    names = [PROVIDER_LOGGED_IN, CLIENT_SEARCHED, CLIENT_CREATED, DOCUMENT_UPLOADED]
    return [
        make_event(
            names[i % len(names)],
            actor=ACTOR,
            subject=f"client-{i}",
            detail={"n": i, "note": "één", "ratio": 0.1 * i},
        )
        for i in range(count)
    ]


def _append(engine: sa.Engine, envelope: dict) -> bool:
    with Session(engine) as session, session.begin():
        return chain.append(session, envelope)


def _verify(engine: sa.Engine, **kwargs) -> dict:
    with Session(engine) as session:
        return chain.verify(session, **kwargs)


def _records(engine: sa.Engine) -> list[AuditRecord]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(AuditRecord).order_by(AuditRecord.seq)))


def _tamper(engine: sa.Engine, statement: str, **params) -> None:
    """Change the log as a superuser would: with the append-only trigger switched off."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update_delete")
        )
        conn.execute(sa.text(statement), params)
        conn.execute(
            sa.text("ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_update_delete")
        )


def test_appended_events_form_a_chain_that_verifies(engine):
    events = _events(5)

    assert [_append(engine, e) for e in events] == [True] * 5

    records = _records(engine)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [str(r.event_id) for r in records] == [e["event_id"] for e in events]
    assert [r.envelope for r in records] == events
    assert records[0].prev_hash == chain.GENESIS
    for before, after in zip(records, records[1:], strict=False):
        assert after.prev_hash == before.hash
    assert len({r.hash for r in records}) == 5
    assert records[0].actor_username == "verlos-anna"
    assert records[2].subject == "client-2"
    assert _verify(engine) == {"ok": True, "records": 5, "broken_at": None}


def test_an_empty_chain_verifies(engine):
    assert _verify(engine) == {"ok": True, "records": 0, "broken_at": None}


def test_the_same_event_twice_is_stored_once(engine):
    first, second = _events(2)

    assert _append(engine, first) is True
    assert _append(engine, first) is False
    assert _append(engine, second) is True
    assert _append(engine, dict(first)) is False

    records = _records(engine)
    assert [str(r.event_id) for r in records] == [first["event_id"], second["event_id"]]
    assert _verify(engine) == {"ok": True, "records": 2, "broken_at": None}


def test_the_same_event_twice_in_one_transaction_is_stored_once(engine):
    (event,) = _events(1)

    with Session(engine) as session, session.begin():
        assert chain.append(session, event) is True
        assert chain.append(session, event) is False

    assert len(_records(engine)) == 1


def test_verify_walks_the_chain_in_batches(engine):
    for event in _events(7):
        _append(engine, event)

    assert _verify(engine, batch=2) == {"ok": True, "records": 7, "broken_at": None}
    assert _verify(engine, batch=7) == {"ok": True, "records": 7, "broken_at": None}


def test_the_database_refuses_to_update_or_delete_a_record(engine):
    for event in _events(3):
        _append(engine, event)
    before = [(r.seq, r.hash, r.envelope) for r in _records(engine)]

    statements = [
        "UPDATE audit_records SET outcome = 'denied' WHERE seq = 2",
        "UPDATE audit_records SET envelope = '{}'::jsonb",
        "DELETE FROM audit_records WHERE seq = 3",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ]
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text(statement))

    assert [(r.seq, r.hash, r.envelope) for r in _records(engine)] == before
    assert _verify(engine) == {"ok": True, "records": 3, "broken_at": None}


def test_a_changed_envelope_breaks_the_chain_at_that_record(engine):
    for event in _events(5):
        _append(engine, event)

    _tamper(
        engine,
        "UPDATE audit_records SET envelope = jsonb_set(envelope, '{outcome}', '\"denied\"') "
        "WHERE seq = :seq",
        seq=3,
    )

    assert _records(engine)[2].envelope["outcome"] == "denied"
    assert _verify(engine) == {"ok": False, "records": 2, "broken_at": 3}
    assert _verify(engine, batch=2) == {"ok": False, "records": 2, "broken_at": 3}


def test_a_changed_first_or_last_record_is_found(engine):
    for event in _events(4):
        _append(engine, event)

    _tamper(
        engine,
        "UPDATE audit_records SET envelope = jsonb_set(envelope, '{event}', :name) "
        "WHERE seq = :seq",
        name=f'"{DOCUMENT_DOWNLOADED}"',
        seq=4,
    )
    assert _verify(engine) == {"ok": False, "records": 3, "broken_at": 4}

    _tamper(
        engine,
        "UPDATE audit_records SET envelope = envelope - 'subject' WHERE seq = :seq",
        seq=1,
    )
    assert _verify(engine) == {"ok": False, "records": 0, "broken_at": 1}


def test_a_rehashed_record_breaks_the_link_to_the_next(engine):
    """Forging a record's hash too does not help: the next record still points at the old one."""
    for event in _events(4):
        _append(engine, event)
    second = _records(engine)[1]
    forged = {**second.envelope, "subject": "client-forged"}

    _tamper(
        engine,
        "UPDATE audit_records SET envelope = CAST(:envelope AS jsonb), hash = :hash WHERE seq = 2",
        envelope=chain.canonical(forged).decode(),
        hash=chain.link(second.prev_hash, forged),
    )

    assert _verify(engine) == {"ok": False, "records": 2, "broken_at": 3}


def test_a_removed_record_is_found(engine):
    for event in _events(4):
        _append(engine, event)

    _tamper(engine, "DELETE FROM audit_records WHERE seq = 2")

    assert _verify(engine) == {"ok": False, "records": 1, "broken_at": 3}


def test_appending_after_an_intact_chain_continues_it(engine):
    first, second, third = _events(3)
    _append(engine, first)
    _append(engine, second)
    assert _verify(engine)["ok"] is True

    _append(engine, third)

    records = _records(engine)
    assert records[-1].seq == 3
    assert records[-1].prev_hash == records[-2].hash
    assert records[-1].hash == chain.link(records[-2].hash, third)
    assert _verify(engine) == {"ok": True, "records": 3, "broken_at": None}
