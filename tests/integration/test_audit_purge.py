"""Purging audit records past their retention, on a real PostgreSQL (as its owner).

The oldest records go as one run, under a signed marker; the chain and its checkpoints
still hold afterwards. Records removed any other way are named, a log that does not
hold is not purged, and not even the owner removes a record outside a purge.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from overdracht.contracts import AUDIT_PURGED, CLIENT_SEARCHED, make_event
from services.audit import chain
from services.audit.checkpoints import FileCheckpointStore, verify_against, write_checkpoint
from services.audit.models import AuditPurge, AuditRecord, ClientLookup
from services.audit.purge import PurgeRefused, cutoff, purge

ACTOR = {"type": "provider", "id": "p-1", "username": "verlos-anna", "role": "zorgverlener"}
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def store(tmp_path) -> FileCheckpointStore:
    return FileCheckpointStore(tmp_path / "audit-checkpoints")


def _append(engine: sa.Engine, count: int, prefix: str = "client") -> datetime:
    """count records, about clients prefix-0.. ; the moment after the last of them."""
    for i in range(count):
        event = make_event(CLIENT_SEARCHED, actor=ACTOR, subject=f"{prefix}-{i}")
        with Session(engine) as session, session.begin():
            chain.append(session, event)
    time.sleep(0.01)
    return datetime.now(UTC)


def _checkpoint(engine: sa.Engine, store: FileCheckpointStore) -> None:
    with Session(engine) as session:
        write_checkpoint(session, store, KEY)


def _verify(engine: sa.Engine, store: FileCheckpointStore) -> dict:
    with Session(engine) as session:
        return verify_against(session, store, KEY.public_key())


def _purge(engine: sa.Engine, store: FileCheckpointStore, before: datetime) -> dict:
    with Session(engine) as session, session.begin():
        return purge(session, store, KEY, before)


def _records(engine: sa.Engine) -> list[AuditRecord]:
    with Session(engine) as session:
        return list(session.scalars(sa.select(AuditRecord).order_by(AuditRecord.seq)))


def test_the_oldest_records_go_and_the_log_still_holds(engine, store):
    old = _append(engine, 5)
    _checkpoint(engine, store)
    _append(engine, 3, prefix="recent")
    _checkpoint(engine, store)
    fifth = _records(engine)[4].hash

    result = _purge(engine, store, old)

    assert (result["removed"], result["through"]) == (5, 5)
    kept = _records(engine)
    assert [r.seq for r in kept] == [6, 7, 8, 9]
    assert kept[0].prev_hash == fifth  # the chain goes on from the last record removed
    purged = kept[-1]
    assert purged.event == AUDIT_PURGED and purged.envelope["detail"]["removed"] == 5
    assert purged.envelope["actor"] == {"type": "operator", "via": "cli"}
    checked = _verify(engine, store)
    assert checked["ok"], checked["problems"]
    assert checked["purged_through"] == 5 and checked["records"] == 4
    # the audit service signs on from there, and it all still holds
    _append(engine, 1, prefix="later")
    _checkpoint(engine, store)
    assert _verify(engine, store)["ok"]
    assert _purge(engine, store, old)["removed"] == 0  # nothing older is left


def test_when_every_record_is_old_the_purge_record_carries_the_chain_on(engine, store):
    _append(engine, 3)
    _checkpoint(engine, store)
    third = _records(engine)[2].hash
    _purge(engine, store, datetime.now(UTC) + timedelta(seconds=1))
    (purged,) = _records(engine)
    assert (purged.seq, purged.prev_hash, purged.event) == (4, third, AUDIT_PURGED)
    _append(engine, 1)
    assert [r.seq for r in _records(engine)] == [4, 5]
    _checkpoint(engine, store)
    assert _verify(engine, store)["ok"]


def test_lookups_of_clients_no_kept_record_names_go_with_them(engine, store):
    with Session(engine) as session, session.begin():
        for client in ("client-0", "recent-0"):
            session.add(
                ClientLookup(
                    client_id=client,
                    kind="bsn",
                    birth_date=date(1990, 1, 1),
                    hash=client.ljust(64, "0"),
                    recorded_at=datetime.now(UTC),
                )
            )
    old = _append(engine, 2)
    _append(engine, 1, prefix="recent")
    _checkpoint(engine, store)
    assert _purge(engine, store, old)["lookups"] == 1
    with Session(engine) as session:
        assert session.scalars(sa.select(ClientLookup.client_id)).all() == ["recent-0"]


def test_records_removed_without_a_signed_purge_are_named(engine, store):
    _append(engine, 5)
    _checkpoint(engine, store)
    second = _records(engine)[1].hash
    # a superuser removes the oldest records and writes a purge of her own
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        conn.execute(sa.text("DELETE FROM audit_records WHERE seq <= 2"))
        conn.execute(sa.text("ALTER TABLE audit_records ENABLE TRIGGER USER"))
        conn.execute(
            sa.insert(AuditPurge).values(
                seq_through=2,
                head=second,
                removed=2,
                before=datetime.now(UTC),
                purged_at=datetime.now(UTC),
            )
        )
    checked = _verify(engine, store)
    assert not checked["ok"]
    assert any("no signed marker" in p for p in checked["problems"]), checked["problems"]


def test_a_log_that_does_not_hold_is_not_purged(engine, store):
    old = _append(engine, 4)
    _checkpoint(engine, store)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        conn.execute(sa.text("UPDATE audit_records SET outcome = 'found' WHERE seq = 2"))
        conn.execute(
            sa.text(
                "UPDATE audit_records SET envelope = jsonb_set(envelope, '{outcome}', "
                "'\"found\"') WHERE seq = 2"
            )
        )
        conn.execute(sa.text("ALTER TABLE audit_records ENABLE TRIGGER USER"))
    lines = store.path.read_bytes()
    with pytest.raises(PurgeRefused, match="does not hold"):
        _purge(engine, store, old)
    assert [r.seq for r in _records(engine)] == [1, 2, 3, 4]
    assert store.path.read_bytes() == lines  # no marker signed either


def test_not_even_the_owner_removes_or_changes_a_record_outside_a_purge(engine):
    _append(engine, 3)
    attempts = [
        "DELETE FROM audit_records WHERE seq = 1",
        # a purge's switch, but for records up to 1 only
        "SELECT set_config('overdracht.audit_purge_through', '1', true);"
        " DELETE FROM audit_records WHERE seq = 2",
        "SELECT set_config('overdracht.audit_purge_through', '3', true);"
        " UPDATE audit_records SET outcome = 'x' WHERE seq = 1",
        "DELETE FROM audit_purges",
    ]
    for statement in attempts:
        with pytest.raises(sa.exc.DBAPIError) as refused, engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert isinstance(refused.value.orig, psycopg2.errors.RaiseException)
    assert len(_records(engine)) == 3


def test_records_are_kept_five_years_at_least():
    assert cutoff(date(2031, 5, 1), 5) == datetime(2026, 5, 1, tzinfo=UTC)
    assert cutoff(date(2032, 2, 29), 5) == datetime(2027, 3, 1, tzinfo=UTC)
    assert cutoff(date(2040, 1, 1), 7) == datetime(2033, 1, 1, tzinfo=UTC)
    with pytest.raises(PurgeRefused, match="at least 5 years"):
        cutoff(date(2031, 5, 1), 4)
