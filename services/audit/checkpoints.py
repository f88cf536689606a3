"""Signed checkpoints of the audit chain, kept where the audit database cannot reach them.

The triggers stop the audit database's own roles from changing the log, not a superuser:
one could delete the newest records or rewrite the chain with every hash recomputed, and
the chain walk alone would not notice. So every OVERDRACHT_AUDIT_CHECKPOINT_SECONDS the
audit service signs the chain's head (record count and hash of the newest record) with a
key the database never holds, and appends it to a store outside the database.
`verify_against` holds the database against every checkpoint: a record a checkpoint
covered that is now missing, edited or re-hashed is named. Records newer than the newest
checkpoint (at most one interval's worth) are covered by the chain walk only.

A purge of the oldest records (services/audit/purge.py) writes a signed marker to the
same store first (`purged_through`, the last removed record's hash): records up to it
may be missing, and the chain starts again after it. Records removed without such a
marker are named like any other missing record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy.orm import Session

from overdracht import config
from services.audit import chain
from services.audit.models import AuditPurge, AuditRecord

FIELDS = ("records", "head", "at", "key_id")
#: a purge's marker: the oldest records up to purged_through were removed on purpose
PURGE_FIELDS = ("purged_through", "head", "at", "key_id")
#: how many of the newest checkpoints the writer reads to find the one it extends
RECENT = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


class ChainBroken(Exception):
    """The chain no longer extends the newest checkpoint, so it is not signed again."""


class CheckpointStore(Protocol):
    """Where checkpoints live: append-only and out of the audit database's reach."""

    def append(self, checkpoint: dict[str, Any]) -> None:
        """Store one signed checkpoint durably, after every one stored before."""

    def load(self) -> list[dict[str, Any] | None]:
        """Every stored checkpoint, oldest first; None for one that cannot be read."""

    def recent(self, count: int) -> list[dict[str, Any] | None]:
        """The newest `count` checkpoints, oldest first."""


class FileCheckpointStore:
    """Checkpoints as JSON lines in `checkpoints.jsonl`, appended to and never rewritten.

    The file is created 0600 in a 0700 directory. Production puts the directory on storage
    the database host cannot write (a mount from another host, a WORM volume), so whoever
    controls the database cannot remove or replace checkpoints; a store on S3 with Object
    Lock can take this class's place, it needs only these three methods.
    """

    FILENAME = "checkpoints.jsonl"
    #: enough for RECENT lines of about 230 bytes, many times over
    TAIL_BYTES = 64 * 1024

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME

    def __str__(self) -> str:
        return str(self.path)

    def append(self, checkpoint: dict[str, Any]) -> None:
        line = chain.canonical(checkpoint) + b"\n"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = not self.path.exists()
        if self._ends_mid_line():
            line = b"\n" + line  # a line torn by a crash must not swallow this one
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # one write with O_APPEND: lines of concurrent writers never interleave
            if os.write(fd, line) != len(line):
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's directory entry must survive a crash too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def load(self) -> list[dict[str, Any] | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return [_parse(line) for line in data.splitlines() if line.strip()]

    def recent(self, count: int) -> list[dict[str, Any] | None]:
        try:
            with self.path.open("rb") as file:
                start = max(0, file.seek(0, os.SEEK_END) - self.TAIL_BYTES)
                file.seek(start)
                lines = file.read().splitlines()
        except FileNotFoundError:
            return []
        if start:
            lines = lines[1:]  # the first line read may be cut
        return [_parse(line) for line in lines if line.strip()][-count:]

    def _ends_mid_line(self) -> bool:
        try:
            with self.path.open("rb") as file:
                if file.seek(0, os.SEEK_END) == 0:
                    return False
                file.seek(-1, os.SEEK_END)
                return file.read(1) != b"\n"
        except FileNotFoundError:
            return False


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def file_store() -> FileCheckpointStore:
    """The store OVERDRACHT_AUDIT_CHECKPOINT_DIR names."""
    return FileCheckpointStore(config.get("OVERDRACHT_AUDIT_CHECKPOINT_DIR"))


# --- signing ---------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a key: which key signed a checkpoint, without trusting the claim."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(records: int, head: str, key: Ed25519PrivateKey, at: datetime | None = None) -> dict:
    """A checkpoint of a chain of `records` records whose newest hash is `head`."""
    return _signed({"records": records, "head": head}, key, at)


def sign_purge(through: int, head: str, key: Ed25519PrivateKey, at: datetime | None = None) -> dict:
    """A purge's marker: records 1..through removed, the last of them hashed `head`."""
    return _signed({"purged_through": through, "head": head}, key, at)


def _signed(fields: dict[str, Any], key: Ed25519PrivateKey, at: datetime | None) -> dict:
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    body = {
        **fields,
        "at": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "key_id": key_id(key.public_key()),
    }
    return {**body, "signature": key.sign(chain.canonical(body)).hex()}


def _describe(entry: Any, number: int) -> str:
    if isinstance(entry, dict) and "records" in entry and "at" in entry:
        return f"checkpoint {number} ({entry['records']} records, {entry['at']})"
    if isinstance(entry, dict) and "purged_through" in entry and "at" in entry:
        return f"checkpoint {number} (purge through {entry['purged_through']}, {entry['at']})"
    return f"checkpoint {number}"


def untrusted_because(entry: Any, public_key: Ed25519PublicKey) -> str | None:
    """Why a stored entry is not a checkpoint signed with public_key; None when it is."""
    shape = FIELDS if isinstance(entry, dict) and "records" in entry else PURGE_FIELDS
    if (
        not isinstance(entry, dict)
        or set(entry) != {*shape, "signature"}
        or type(entry[shape[0]]) is not int
        or entry[shape[0]] < 0
        or not isinstance(entry["head"], str)
        or not _HEX64.fullmatch(entry["head"])
        or not all(isinstance(entry[k], str) for k in ("at", "key_id", "signature"))
        or not _SIGNATURE.fullmatch(entry["signature"])
    ):
        return "is unreadable"
    if entry["key_id"] != key_id(public_key):
        return f"was signed with key {entry['key_id']}, not the configured {key_id(public_key)}"
    try:
        body = {k: entry[k] for k in shape}
        public_key.verify(bytes.fromhex(entry["signature"]), chain.canonical(body))
    except InvalidSignature:
        return "has an invalid signature"
    return None


def heads(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checkpoints of the chain's head among trusted entries (not purge markers)."""
    return [e for e in entries if "records" in e]


def trusted(
    entries: Iterable[Any], public_key: Ed25519PublicKey
) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries whose signature holds, and a problem for every other one."""
    good, problems = [], []
    for number, entry in enumerate(entries, start=1):
        reason = untrusted_because(entry, public_key)
        if reason is None:
            good.append(entry)
        else:
            problems.append(f"{_describe(entry, number)} {reason}: not trusted")
    return good, problems


# --- writing ---------------------------------------------------------------------------


def write_checkpoint(
    session: Session, store: CheckpointStore, key: Ed25519PrivateKey
) -> dict[str, Any] | None:
    """Sign the chain's head into the store when it moved since the newest checkpoint.

    The first checkpoint is written even for an empty chain: it shows that checkpointing
    has begun, so `verify_against` can tell an empty store from a lost or misnamed one.
    Several writers may run at once; a checkpoint written twice, or an older one after a
    newer one, is harmless, since each is checked on its own. Raises ChainBroken instead
    of signing a chain that no longer extends the newest checkpoint.
    """
    # the store before the head: every checkpoint read then covers records that exist now
    newest = max(
        heads(trusted(store.recent(RECENT), key.public_key())[0]),
        key=lambda c: c["records"],
        default=None,
    )
    records, head = chain.head(session)
    if newest is not None and (newest["records"], newest["head"]) == (records, head):
        return None
    problem = _extends(session, newest, records)
    if problem is not None:
        raise ChainBroken(problem)
    checkpoint = sign(records, head, key)
    store.append(checkpoint)
    return checkpoint


def _extends(
    session: Session, since: dict[str, Any] | None, upto: int, batch: int = 1000
) -> str | None:
    """Why records 1..upto do not extend the checkpoint `since`; None when they do.

    Records a purge removed are not looked for: the chain then starts after the purge.
    """
    after, prev = (since["records"], since["head"]) if since else (0, chain.GENESIS)
    start, start_head = chain.start(session)
    if after <= start:
        if after == start and after and prev != start_head:
            return f"the purge's record {after} differs from the checkpoint of {since['at']}"
        after, prev = start, start_head
    elif after:
        covered = f"the checkpoint of {since['at']} covered {after} records"
        if after > upto:
            return f"{_span(upto + 1, after)} missing: {covered}"
        found = session.scalar(sa.select(AuditRecord.hash).where(AuditRecord.seq == after))
        if found is None:
            return f"record {after} is missing: {covered}"
        if found != prev:
            return f"record {after} was edited or re-hashed: its hash differs from {covered}"
    while after < upto:
        rows = session.scalars(
            sa.select(AuditRecord)
            .where(AuditRecord.seq > after, AuditRecord.seq <= upto)
            .order_by(AuditRecord.seq)
            .limit(batch)
        ).all()
        if not rows:
            return f"{_span(after + 1, upto)} missing"
        for record in rows:
            if (
                record.seq != after + 1
                or record.prev_hash != prev
                or record.hash != chain.link(prev, record.envelope)
            ):
                return f"the hash chain breaks at record {record.seq}"
            prev, after = record.hash, record.seq
    return None


# --- verifying -------------------------------------------------------------------------


def verify_against(
    session: Session, store: CheckpointStore, public_key: Ed25519PublicKey
) -> dict[str, Any]:
    """Walk the chain and hold it against every checkpoint; ok only when all of it holds.

    problems lists what is wrong with the records first, then the untrusted checkpoints.
    """
    # the store before the database: every checkpoint read covers records that exist by then
    entries, untrusted = trusted(store.load(), public_key)
    checkpoints = heads(entries)
    marked = {(e["purged_through"], e["head"]) for e in entries if "purged_through" in e}
    walk = chain.verify(session)
    problems = []
    purges = session.execute(
        sa.select(AuditPurge.seq_through, AuditPurge.head).order_by(AuditPurge.seq_through)
    ).all()
    for purge in purges:
        if (purge.seq_through, purge.head) not in marked:
            problems.append(
                f"records up to {purge.seq_through} were removed by a purge that no signed "
                f"marker in {store} vouches for"
            )
    if walk["broken_at"] is not None:
        problems.append(
            f"the hash chain breaks at record {walk['broken_at']}: "
            "a record there was edited, re-hashed or removed"
        )
    start, start_head = chain.start(session)
    newest, _ = chain.head(session)
    covered = max((c["records"] for c in checkpoints), default=0)
    if not checkpoints and newest:
        problems.append(
            f"no trusted checkpoint in {store}, so none of the {newest} records is covered "
            "(is OVERDRACHT_AUDIT_CHECKPOINT_DIR right?)"
        )
    for checkpoint in checkpoints:  # the last record purged: its hash is the purge's
        if start and checkpoint["records"] == start and checkpoint["head"] != start_head:
            problems.append(
                f"record {start}'s hash in the purge differs from the checkpoint of "
                f"{checkpoint['at']}"
            )
    kept = [c for c in checkpoints if c["records"] > start]
    seqs = sorted({c["records"] for c in kept})
    gaps = [(max(first, start + 1), last) for first, last in missing(session, covered)]
    problems += compare(kept, _hashes(session, seqs), [g for g in gaps if g[0] <= g[1]])
    problems += untrusted
    return {
        **walk,
        "ok": walk["ok"] and not problems,
        "checkpoints": len(checkpoints),
        "covered": covered,
        "purged_through": start,
        "problems": problems,
    }


def _hashes(session: Session, seqs: list[int], chunk: int = 5000) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(seqs), chunk):
        rows = session.execute(
            sa.select(AuditRecord.seq, AuditRecord.hash).where(
                AuditRecord.seq.in_(seqs[start : start + chunk])
            )
        )
        found.update({seq: hash_ for seq, hash_ in rows})
    return found


def missing(session: Session, upto: int) -> list[tuple[int, int]]:
    """The runs of seq in 1..upto that have no record, as (first, last)."""
    if upto < 1:
        return []
    seq = AuditRecord.seq
    pairs = (
        sa.select(seq.label("seq"), sa.func.lead(seq).over(order_by=seq).label("next"))
        .where(seq <= upto)
        .subquery()
    )
    inner = session.execute(
        sa.select(pairs.c.seq + 1, pairs.c.next - 1)
        .where(pairs.c.next > pairs.c.seq + 1)
        .order_by(pairs.c.seq)
    ).all()
    low, high = session.execute(
        sa.select(sa.func.min(seq), sa.func.max(seq)).where(seq <= upto)
    ).one()
    if low is None:
        return [(1, upto)]
    gaps = [(1, low - 1)] if low > 1 else []
    gaps += [(first, last) for first, last in inner]
    if high < upto:
        gaps.append((high + 1, upto))
    return gaps


def compare(
    checkpoints: list[dict[str, Any]],
    hashes: Mapping[int, str],
    gaps: list[tuple[int, int]],
) -> list[str]:
    """What the records contradict in the trusted checkpoints, each naming its records.

    hashes: seq → hash of each record a checkpoint ends at that still exists;
    gaps: the missing runs of seq up to the highest checkpoint.
    """
    # several writers may have signed the same head: judge each head once, by its first
    distinct: dict[tuple[int, str], dict[str, Any]] = {}
    for checkpoint in sorted(checkpoints, key=lambda c: c["at"]):
        distinct.setdefault((checkpoint["records"], checkpoint["head"]), checkpoint)
    ordered = sorted(distinct.values(), key=lambda c: (c["records"], c["at"]))
    problems = []
    for first, last in gaps:
        cover = next(c for c in ordered if c["records"] >= last)
        problems.append(
            f"{_span(first, last)} missing: "
            f"the checkpoint of {cover['at']} covered {cover['records']} records"
        )
    intact, run = 0, []
    for checkpoint in ordered:
        records = checkpoint["records"]
        if records == 0 or records not in hashes:  # nothing to hold, or reported as missing
            continue
        if hashes[records] == checkpoint["head"]:
            if run:
                problems.append(_changed(intact, run))
                run = []
            intact = records
        else:
            run.append(checkpoint)
    if run:
        problems.append(_changed(intact, run))
    return problems


def _changed(intact: int, run: list[dict[str, Any]]) -> str:
    """One message for consecutive checkpoints whose record no longer has the signed hash."""
    first = run[0]
    records = first["records"]
    text = (
        f"record {records} was" if intact + 1 == records else f"records {intact + 1}-{records} were"
    )
    text += (
        f" edited or re-hashed: record {records}'s hash differs from "
        f"the checkpoint of {first['at']}"
    )
    if intact:
        text += f", record {intact}'s still matches its checkpoint"
    if len(run) > 1:
        text += (
            f" (and {len(run) - 1} later checkpoints, up to record {run[-1]['records']}, differ)"
        )
    return text


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}-{last} are"
