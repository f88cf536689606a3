"""Audit checkpoints without a database: signatures, the file store, what the records contradict."""

from __future__ import annotations

import logging
import stat
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.testing.services import worker_factory

from services.audit import chain, checkpoints
from services.audit.checkpoints import FileCheckpointStore, compare, sign, trusted

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _hash(n: int, version: str = "") -> str:
    return chain.link(chain.GENESIS, {"n": n, "version": version})


def _checkpoint(records: int, minute: int = 0, version: str = "") -> dict:
    return sign(records, _hash(records, version), KEY, START + timedelta(minutes=minute))


# --- signatures ------------------------------------------------------------------------


def test_a_signed_checkpoint_is_trusted():
    checkpoint = _checkpoint(100)

    assert set(checkpoint) == {"records", "head", "at", "key_id", "signature"}
    assert checkpoint["at"] == "2026-11-26T10:00:00Z"
    assert checkpoint["key_id"] == checkpoints.key_id(PUBLIC)
    assert trusted([checkpoint], PUBLIC) == ([checkpoint], [])


@pytest.mark.parametrize(
    "change",
    [
        {"records": 99},
        {"records": 101},
        {"head": _hash(7)},
        {"at": "2026-11-27T10:00:00Z"},
    ],
)
def test_a_changed_checkpoint_is_refused(change):
    forged = {**_checkpoint(100), **change}

    assert trusted([forged], PUBLIC) == (
        [],
        [
            f"checkpoint 1 ({forged['records']} records, {forged['at']}) "
            "has an invalid signature: not trusted"
        ],
    )


def test_a_checkpoint_signed_with_another_key_is_refused_whatever_key_it_claims():
    other = Ed25519PrivateKey.generate()
    honest = sign(100, _hash(100), other, START)
    claiming_ours = {**sign(100, _hash(100), other, START), "key_id": checkpoints.key_id(PUBLIC)}

    good, problems = trusted([honest, claiming_ours], PUBLIC)

    assert good == []
    assert problems[0].startswith("checkpoint 1 (100 records, 2026-11-26T10:00:00Z) was signed")
    assert checkpoints.key_id(other.public_key()) in problems[0]
    assert problems[1] == (
        "checkpoint 2 (100 records, 2026-11-26T10:00:00Z) has an invalid signature: not trusted"
    )


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "not a checkpoint",
        {"records": 3},
        {**_checkpoint(3), "records": True},
        {**_checkpoint(3), "records": -1},
        {**_checkpoint(3), "records": "3"},
        {**_checkpoint(3), "head": "zz"},
        {**_checkpoint(3), "signature": "00"},
        {**_checkpoint(3), "note": "unsigned extra"},
    ],
)
def test_a_malformed_entry_is_reported_not_trusted(entry):
    good, problems = trusted([_checkpoint(1), entry], PUBLIC)

    assert len(good) == 1
    assert len(problems) == 1
    assert problems[0].startswith("checkpoint 2")
    assert problems[0].endswith("is unreadable: not trusted")


# --- what the records contradict --------------------------------------------------------


def test_nothing_is_contradicted_when_every_checkpointed_record_holds():
    marks = [_checkpoint(0), _checkpoint(5, 1), _checkpoint(10, 2)]

    assert compare(marks, {5: _hash(5), 10: _hash(10)}, []) == []


def test_missing_newest_records_are_named_with_the_checkpoint_that_covered_them():
    marks = [_checkpoint(50), _checkpoint(100, 1)]

    problems = compare(marks, {50: _hash(50)}, [(96, 100)])

    assert problems == [
        "records 96-100 are missing: the checkpoint of 2026-11-26T10:01:00Z covered 100 records"
    ]


def test_a_missing_record_is_named_with_the_first_checkpoint_that_covered_it():
    marks = [_checkpoint(30), _checkpoint(50, 1), _checkpoint(100, 2)]

    problems = compare(marks, {30: _hash(30), 50: _hash(50), 100: _hash(100)}, [(42, 42)])

    assert problems == [
        "record 42 is missing: the checkpoint of 2026-11-26T10:01:00Z covered 50 records"
    ]


def test_a_rewrite_is_narrowed_to_the_records_between_the_checkpoints():
    marks = [_checkpoint(5), _checkpoint(10, 1), _checkpoint(15, 2)]
    rewritten = {5: _hash(5), 10: _hash(10, "forged"), 15: _hash(15, "forged")}

    assert compare(marks, rewritten, []) == [
        "records 6-10 were edited or re-hashed: record 10's hash differs from the checkpoint "
        "of 2026-11-26T10:01:00Z, record 5's still matches its checkpoint "
        "(and 1 later checkpoints, up to record 15, differ)"
    ]


def test_a_rewrite_from_the_first_record_is_named():
    marks = [_checkpoint(0), _checkpoint(10, 1)]

    assert compare(marks, {10: _hash(10, "forged")}, []) == [
        "records 1-10 were edited or re-hashed: record 10's hash differs from the checkpoint "
        "of 2026-11-26T10:01:00Z"
    ]


def test_separate_changes_are_reported_separately():
    marks = [_checkpoint(n, n) for n in (3, 6, 9, 12)]
    hashes = {3: _hash(3, "x"), 6: _hash(6), 9: _hash(9, "x"), 12: _hash(12)}

    problems = compare(marks, hashes, [])

    assert [p.split(":")[0] for p in problems] == [
        "records 1-3 were edited or re-hashed",
        "records 7-9 were edited or re-hashed",
    ]


def test_checkpoints_written_twice_or_out_of_order_are_judged_once():
    marks = [_checkpoint(10, 2), _checkpoint(5, 3), _checkpoint(10, 1), _checkpoint(10, 4)]

    assert compare(marks, {5: _hash(5), 10: _hash(10)}, []) == []
    assert compare(marks, {5: _hash(5), 10: _hash(10, "x")}, []) == [
        "records 6-10 were edited or re-hashed: record 10's hash differs from the checkpoint "
        "of 2026-11-26T10:01:00Z, record 5's still matches its checkpoint"
    ]


# --- the file store --------------------------------------------------------------------


def test_the_store_appends_lines_in_a_private_file(tmp_path):
    store = FileCheckpointStore(tmp_path / "audit-checkpoints")
    assert store.load() == [] and store.recent(5) == []
    first, second = _checkpoint(1), _checkpoint(2, 1)

    store.append(first)
    store.append(second)

    assert store.load() == [first, second]
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.path.read_text().count("\n") == 2


def test_a_torn_line_is_reported_and_does_not_swallow_the_next(tmp_path):
    store = FileCheckpointStore(tmp_path)
    store.append(_checkpoint(1))
    with store.path.open("a") as file:
        file.write('{"records": 2, "he')  # a crash in the middle of a write
    after = _checkpoint(3, 2)

    store.append(after)

    assert store.load()[1] is None and store.load()[2] == after
    assert trusted(store.load(), PUBLIC)[1] == ["checkpoint 2 is unreadable: not trusted"]


def test_recent_reads_only_the_end_of_the_file(tmp_path, monkeypatch):
    store = FileCheckpointStore(tmp_path)
    marks = [_checkpoint(n, n) for n in range(1, 41)]
    for mark in marks:
        store.append(mark)
    monkeypatch.setattr(FileCheckpointStore, "TAIL_BYTES", 1000)  # a few lines, one cut

    recent = store.recent(32)

    assert recent and recent == marks[-len(recent) :]
    assert len(recent) < 40
    assert store.recent(2) == marks[-2:]


# --- the timer -------------------------------------------------------------------------


class _Read:
    """A stand-in for the database dependency: read() hands out a session."""

    @contextmanager
    def read(self):
        yield "session"


class _Writer:
    def __init__(self, outcome):
        self.outcome = outcome
        self.sessions = []

    def write(self, session):
        self.sessions.append(session)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "level", "message"),
    [
        (_checkpoint(4), logging.INFO, "audit checkpoint: 4 records"),
        (None, None, None),
        (checkpoints.ChainBroken("records 3-4 are missing"), logging.ERROR, "records 3-4"),
        (OSError("read-only file system"), logging.WARNING, "retrying next interval"),
    ],
)
def test_the_timer_writes_and_outlives_its_failures(outcome, level, message, caplog):
    from services.audit.service import AuditService

    writer = _Writer(outcome)
    service = worker_factory(AuditService, db=_Read(), checkpoints=writer)

    with caplog.at_level(logging.INFO, logger="services.audit.service"):
        service.write_checkpoint_on_timer()  # never raises: the next tick tries again

    assert writer.sessions == ["session"]
    records = [r for r in caplog.records if r.name == "services.audit.service"]
    if level is None:
        assert records == []
    else:
        assert [r.levelno for r in records] == [level]
        assert message in records[0].getMessage()
