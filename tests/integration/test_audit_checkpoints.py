"""Audit checkpoints on a real PostgreSQL: a superuser's deletions and rewrites are named."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from ops import cli
from overdracht.contracts import CLIENT_SEARCHED, DOCUMENT_DOWNLOADED, make_event
from services.audit import chain
from services.audit.checkpoints import (
    ChainBroken,
    FileCheckpointStore,
    sign,
    verify_against,
    write_checkpoint,
)
from services.audit.models import AuditRecord

ACTOR = {"type": "provider", "id": "p-1", "username": "verlos-anna", "role": "zorgverlener"}
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def store(tmp_path) -> FileCheckpointStore:
    return FileCheckpointStore(tmp_path / "audit-checkpoints")


def _append(engine: sa.Engine, count: int) -> None:
    for i in range(count):
        event = make_event(CLIENT_SEARCHED, actor=ACTOR, subject=f"client-{i}", detail={"n": i})
        with Session(engine) as session, session.begin():
            chain.append(session, event)


def _checkpoint(engine: sa.Engine, store: FileCheckpointStore) -> dict | None:
    with Session(engine) as session:
        return write_checkpoint(session, store, KEY)


def _verify(engine: sa.Engine, store: FileCheckpointStore) -> dict:
    with Session(engine) as session:
        return verify_against(session, store, KEY.public_key())


def _walk_only(engine: sa.Engine) -> dict:
    with Session(engine) as session:
        return chain.verify(session)


def _tamper(engine: sa.Engine, *statements: tuple[str, dict]) -> None:
    """Change the log as a superuser can: with the append-only triggers switched off."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        for statement, params in statements:
            conn.execute(sa.text(statement), params)
        conn.execute(sa.text("ALTER TABLE audit_records ENABLE TRIGGER USER"))


def _rewrite(engine: sa.Engine, start: int) -> None:
    """Forge every record from start on and recompute every hash: a consistent chain."""
    with Session(engine) as session:
        records = list(session.scalars(sa.select(AuditRecord).order_by(AuditRecord.seq)))
    prev = records[start - 2].hash if start > 1 else chain.GENESIS
    statements = []
    for record in records[start - 1 :]:
        forged = {**record.envelope, "event": DOCUMENT_DOWNLOADED}
        hash_ = chain.link(prev, forged)
        statements.append(
            (
                "UPDATE audit_records SET envelope = CAST(:envelope AS jsonb), "
                "prev_hash = :prev, hash = :hash WHERE seq = :seq",
                {
                    "envelope": chain.canonical(forged).decode(),
                    "prev": prev,
                    "hash": hash_,
                    "seq": record.seq,
                },
            )
        )
        prev = hash_
    _tamper(engine, *statements)


def test_checkpoints_are_written_only_when_the_head_moves(engine, store):
    first = _checkpoint(engine, store)
    assert (first["records"], first["head"]) == (0, chain.GENESIS)  # the empty chain too
    assert _checkpoint(engine, store) is None

    _append(engine, 3)
    second = _checkpoint(engine, store)

    with Session(engine) as session:
        assert (second["records"], second["head"]) == chain.head(session)
    assert second["records"] == 3
    assert _checkpoint(engine, store) is None
    assert store.load() == [first, second]


def test_an_intact_chain_verifies_including_records_newer_than_the_last_checkpoint(engine, store):
    _append(engine, 6)
    _checkpoint(engine, store)
    _append(engine, 2)  # not checkpointed yet

    assert _verify(engine, store) == {
        "ok": True,
        "records": 8,
        "broken_at": None,
        "checkpoints": 1,
        "covered": 6,
        "purged_through": 0,
        "problems": [],
    }


def test_deleted_newest_records_are_named(engine, store):
    _append(engine, 10)
    checkpoint = _checkpoint(engine, store)

    _tamper(engine, ("DELETE FROM audit_records WHERE seq >= 8", {}))

    assert _walk_only(engine) == {"ok": True, "records": 7, "broken_at": None}  # fooled
    assert _verify(engine, store) == {
        "ok": False,
        "records": 7,
        "broken_at": None,
        "checkpoints": 1,
        "covered": 10,
        "purged_through": 0,
        "problems": [
            f"records 8-10 are missing: the checkpoint of {checkpoint['at']} covered 10 records"
        ],
    }
    # the writer refuses to sign the shortened chain, even once it has grown back
    with pytest.raises(ChainBroken, match="records 8-10 are missing"):
        _checkpoint(engine, store)
    _append(engine, 5)
    with pytest.raises(ChainBroken, match="record 10 was edited or re-hashed"):
        _checkpoint(engine, store)
    assert store.load() == [checkpoint]
    assert _verify(engine, store)["problems"] == [
        "records 1-10 were edited or re-hashed: record 10's hash differs from the checkpoint "
        f"of {checkpoint['at']}"
    ]


def test_a_deleted_record_in_the_middle_is_named(engine, store):
    _append(engine, 10)
    checkpoint = _checkpoint(engine, store)

    _tamper(engine, ("DELETE FROM audit_records WHERE seq = 4", {}))

    result = _verify(engine, store)
    assert (result["ok"], result["broken_at"]) == (False, 5)
    assert result["problems"] == [
        "the hash chain breaks at record 5: a record there was edited, re-hashed or removed",
        f"record 4 is missing: the checkpoint of {checkpoint['at']} covered 10 records",
    ]


def test_an_edited_envelope_is_found(engine, store):
    _append(engine, 6)
    _checkpoint(engine, store)

    _tamper(
        engine,
        (
            "UPDATE audit_records SET envelope = jsonb_set(envelope, '{outcome}', '\"denied\"') "
            "WHERE seq = 3",
            {},
        ),
    )

    result = _verify(engine, store)
    assert (result["ok"], result["records"], result["broken_at"]) == (False, 2, 3)
    assert result["problems"] == [
        "the hash chain breaks at record 3: a record there was edited, re-hashed or removed"
    ]


def test_a_chain_rewritten_consistently_is_caught_by_its_checkpoints(engine, store):
    _append(engine, 4)
    first = _checkpoint(engine, store)
    _append(engine, 6)
    _checkpoint(engine, store)

    _rewrite(engine, start=1)

    assert _walk_only(engine) == {"ok": True, "records": 10, "broken_at": None}  # fooled
    result = _verify(engine, store)
    assert (result["ok"], result["records"], result["broken_at"]) == (False, 10, None)
    assert result["problems"] == [
        "records 1-4 were edited or re-hashed: record 4's hash differs from the checkpoint "
        f"of {first['at']} (and 1 later checkpoints, up to record 10, differ)"
    ]
    with pytest.raises(ChainBroken):
        _checkpoint(engine, store)


def test_a_rewrite_of_the_newest_records_is_narrowed_to_them(engine, store):
    _append(engine, 4)
    _checkpoint(engine, store)
    _append(engine, 6)
    last = _checkpoint(engine, store)

    _rewrite(engine, start=7)

    assert _verify(engine, store)["problems"] == [
        "records 5-10 were edited or re-hashed: record 10's hash differs from the checkpoint "
        f"of {last['at']}, record 4's still matches its checkpoint"
    ]


def test_a_forged_or_torn_checkpoint_is_reported_and_not_trusted(engine, store):
    _append(engine, 5)
    _checkpoint(engine, store)
    _tamper(engine, ("DELETE FROM audit_records WHERE seq = 5", {}))
    # whoever forges a checkpoint that matches the shortened chain lacks the key
    with Session(engine) as session:
        records, head = chain.head(session)
    store.append(sign(records, head, Ed25519PrivateKey.generate()))
    forged = {
        **sign(records, head, Ed25519PrivateKey.generate()),
        "key_id": store.load()[0]["key_id"],
    }
    store.append(forged)
    with store.path.open("a") as file:
        file.write("{torn\n")

    result = _verify(engine, store)

    assert result["ok"] is False and result["checkpoints"] == 1
    assert result["problems"][0].startswith("record 5 is missing")
    assert "checkpoint 2 (4 records" in result["problems"][1]
    assert "was signed with key" in result["problems"][1]
    assert result["problems"][2].endswith("has an invalid signature: not trusted")
    assert result["problems"][3] == "checkpoint 4 is unreadable: not trusted"


def test_several_writers_signing_the_same_head_is_harmless(engine, store):
    _append(engine, 3)
    with Session(engine) as session:
        records, head = chain.head(session)
    _append(engine, 2)
    newer = _checkpoint(engine, store)
    # two instances that read the head at once; one slower than a third that saw more
    store.append(sign(records, head, KEY))
    store.append(sign(records, head, KEY))

    assert _verify(engine, store)["ok"] is True
    assert _checkpoint(engine, store) is None  # the newest checkpoint still names the head
    assert newer["records"] == 5


def test_no_checkpoint_at_all_is_a_problem_once_there_are_records(engine, store):
    assert _verify(engine, store)["ok"] is True  # nothing to cover yet
    _append(engine, 2)

    result = _verify(engine, store)

    assert result["ok"] is False
    assert result["problems"] == [
        f"no trusted checkpoint in {store.path}, so none of the 2 records is covered "
        "(is OVERDRACHT_AUDIT_CHECKPOINT_DIR right?)"
    ]


def test_the_cli_exits_non_zero_and_prints_what_is_missing(engine, store, monkeypatch, capsys):
    monkeypatch.setenv("OVERDRACHT_AUDIT_CHECKPOINT_DIR", str(store.directory))
    monkeypatch.setenv(
        "OVERDRACHT_AUDIT_CHECKPOINT_PUBLIC_KEY", KEY.public_key().public_bytes_raw().hex()
    )
    _append(engine, 6)
    checkpoint = _checkpoint(engine, store)

    assert cli.main(["audit", "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    _tamper(engine, ("DELETE FROM audit_records WHERE seq >= 5", {}))

    assert cli.main(["audit", "verify"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["records"], report["broken_at"]) == (False, 4, None)
    assert report["problems"] == [
        f"records 5-6 are missing: the checkpoint of {checkpoint['at']} covered 6 records"
    ]


def test_the_cli_refuses_without_the_public_key(engine, monkeypatch, capsys):
    monkeypatch.delenv("OVERDRACHT_AUDIT_CHECKPOINT_PUBLIC_KEY", raising=False)

    assert cli.main(["audit", "verify"]) == 2
    assert "OVERDRACHT_AUDIT_CHECKPOINT_PUBLIC_KEY" in capsys.readouterr().err
