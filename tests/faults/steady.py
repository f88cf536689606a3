"""Steady user load through a fault, and the books kept on it afterwards.

A few providers each repeat what providers do: search a client, add one, upload a
document, list, download. Every answer is recorded with what it made (a client's id,
a document's id). After the fault has healed, the audit log, the object store and the
outboxes are compared with what the users were told:

- missing: an action the user was told succeeded that the audit log lacks;
- extra: an audit record of an action the user was told failed (or never asked for).
  A request cut off without any answer (its process was killed under it) may or may not
  have happened before the cut: its record is neither missing nor extra;
- orphans: objects in the store without a document, unfinished multipart uploads, still
  there once the sweep could have removed them (leftover_wait);
- stuck: outbox rows still waiting to reach audit.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import requests

from ops.platform import Platform
from ops.provision import SERVICES_WITH_DATABASE, dsn
from overdracht import config
from tests.support import Api, Harness, in_weeks, mobile, pdf, valid_bsn

KINDS = ("search", "add", "upload", "list", "download")
DOCUMENT = pdf(64 * 1024)


@dataclass
class Answer:
    kind: str
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no HTTP answer at all
    made: str | None = None  # the id of the client or document it made


@dataclass
class Row:
    """One fault's line in the table."""

    fault: str
    requests: int = 0
    errors: int = 0
    longest: float = 0.0
    recovered: float | None = None
    missing: int = 0
    extra: int = 0
    orphans: int = 0
    stuck: int = 0
    restarted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    HEADER = (
        f"{'fault':<28} {'requests':>8} {'errors':>6} {'longest s':>9} "
        f"{'recovered s':>11} {'missing':>7} {'extra':>5} {'orphans':>7} {'stuck':>5}"
    )

    def line(self) -> str:
        recovered = "never" if self.recovered is None else f"{self.recovered:.1f}"
        return (
            f"{self.fault:<28} {self.requests:>8} {self.errors:>6} {self.longest:>9.1f} "
            f"{recovered:>11} {self.missing:>7} {self.extra:>5} {self.orphans:>7} {self.stuck:>5}"
        )


class User:
    """One provider going round the handover, one request at a time."""

    def __init__(self, harness: Harness) -> None:
        self.api: Api = harness.provider()
        self.username = self.api.account.username
        self.client = harness.new_client(self.api)
        placed = harness.upload(self.api, self.client["id"], DOCUMENT)
        assert placed.status_code == 201, placed.text
        self.document = placed.json()["id"]
        self.answers: list[Answer] = []

    def round(self) -> Iterator[tuple[str, Callable[[], requests.Response], Callable]]:
        client_id = self.client["id"]
        yield (
            "search",
            lambda: self.api.post(
                "/clients/search",
                json={"birth_date": self.client["birth_date"], "bsn": self.client["bsn"]},
            ),
            lambda r: None,
        )
        yield (
            "add",
            lambda: self.api.post(
                "/clients",
                json={
                    "maiden_name": "Visser",
                    "birth_date": "1994-07-21",
                    "bsn": valid_bsn(),
                    "phone": mobile(),
                },
            ),
            lambda r: r.json()["id"],
        )
        yield (
            "upload",
            lambda: self.api.post(
                f"/clients/{client_id}/documents",
                data={"document_type": "kraambed", "removal_date": in_weeks(10)},
                files={"file": ("kaart.pdf", DOCUMENT, "application/pdf")},
            ),
            lambda r: r.json()["id"],
        )
        yield ("list", lambda: self.api.get(f"/clients/{client_id}/documents"), lambda r: None)
        yield (
            "download",
            lambda: self.api.get(f"/documents/{self.document}/content"),
            lambda r: (
                None
                if hashlib.sha256(r.content).digest() == hashlib.sha256(DOCUMENT).digest()
                else "incomplete"
            ),
        )

    def act(self, kind: str, call: Callable, made_of: Callable) -> None:
        started = time.monotonic()
        made = None
        try:
            response = call()
            status = response.status_code
            if status in (200, 201):
                made = made_of(response)
                if made == "incomplete":  # a download cut short is not a success
                    status, made = 0, None
        except requests.RequestException:
            status = 0
        self.answers.append(Answer(kind, started, time.monotonic() - started, status, made))


@dataclass
class Steady:
    """Users in threads of their own, going round until stopped."""

    harness: Harness
    users: int = 2
    pause: float = 0.2

    def __post_init__(self) -> None:
        self.people = [User(self.harness) for _ in range(self.users)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(p,)) for p in self.people]

    def _run(self, user: User) -> None:
        while not self._stop.is_set():
            for kind, call, made_of in user.round():
                if self._stop.is_set():
                    return
                user.act(kind, call, made_of)
                self._stop.wait(self.pause)

    @contextmanager
    def running(self) -> Iterator[Steady]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=120)

    @property
    def answers(self) -> list[Answer]:
        return sorted((a for p in self.people for a in p.answers), key=lambda a: a.started)

    def recovered_after(self, moment: float, timeout: float = 60) -> float | None:
        """Seconds from moment until every kind of request succeeded again (None: never)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            firsts = {}
            for a in self.answers:
                if a.started >= moment and a.status in (200, 201) and a.kind not in firsts:
                    firsts[a.kind] = a.started + a.seconds
            if set(firsts) == set(KINDS):
                return max(firsts.values()) - moment
            time.sleep(0.5)
        return None


# --- the books ---------------------------------------------------------------------------


def _rows(platform: Platform, service: str, sql: str, args: tuple = ()) -> list[tuple]:
    connection = psycopg2.connect(dsn(platform.env[f"OVERDRACHT_{service.upper()}_DB"]))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()
    finally:
        connection.close()


def audit_of(platform: Platform, usernames: list[str]) -> list[tuple[str, str, str, str]]:
    """(event, outcome, subject, object id) of every record these providers caused, but
    reads a read.withheld says were never answered (as the auditor's view shows them)."""
    return _rows(
        platform,
        "audit",
        "SELECT event, outcome, subject, envelope->'object'->>'id' FROM audit_records r"
        " WHERE actor_username = ANY(%s) AND NOT EXISTS (SELECT 1 FROM audit_records w"
        "  WHERE w.event = 'read.withheld'"
        "  AND w.envelope->'detail'->>'read_event_id' = r.event_id::text)",
        (usernames,),
    )


def stuck_outbox(platform: Platform) -> int:
    return sum(
        _rows(platform, s, "SELECT count(*) FROM outbox")[0][0]
        for s in SERVICES_WITH_DATABASE
        if s != "audit"
    )


def orphans(platform: Platform) -> int:
    """Objects without a document row, and multipart uploads nobody will finish."""
    from services.documents.storage import make_client

    bucket = platform.env["OVERDRACHT_S3_BUCKET"]
    store = make_client()
    keys = {o.object_name for o in store.list_objects(bucket, prefix="documents/", recursive=True)}
    rows = {r[0] for r in _rows(platform, "documents", "SELECT object_key FROM documents")}
    unfinished = store._list_multipart_uploads(bucket, prefix="documents/").uploads  # noqa: SLF001
    return len(keys - rows) + len(unfinished)


def leftover_wait(platform: Platform) -> float:
    """How long a leftover may stay: an upload cut off by a crash stays covered by its ticket
    until the ticket lapses (an upload under way is never a leftover), then the next sweep
    removes it."""

    def setting(name: str) -> int:
        return int(platform.env.get(name, config.DEFAULTS[name]))

    return setting("OVERDRACHT_TICKET_TTL_SECONDS") + 2 * setting(
        "OVERDRACHT_RETENTION_INTERVAL_SECONDS"
    )


def settle(check: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60) -> Any:
    """Poll check until done(result) or timeout; the last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(1)


#: the record each successful kind of request must leave: a download counts once its
#: delivery is recorded as delivered (its grant is recorded before any byte, delivered or not)
RECORD_OF = {
    "search": "client.searched",
    "add": "client.created",
    "upload": "document.uploaded",
    "list": "document.listed",
    "download": "document.delivery:delivered",
}


def _tally(records: list[tuple[str, str, str, str]]) -> Counter:
    tally = Counter(event for event, _, _, _ in records)
    tally.update(f"{event}:{outcome}" for event, outcome, _, _ in records)
    return tally


def books(platform: Platform, load: Steady, row: Row) -> Row:
    """Compare what users were told with the audit log, the store and the outboxes."""
    answers = load.answers
    row.requests = len(answers)
    row.errors = sum(a.status not in (200, 201) for a in answers)
    statuses = Counter(a.status for a in answers if a.status not in (200, 201))
    if statuses:
        row.notes.append(
            "errors: " + ", ".join(f"{n}× {s or 'no answer'}" for s, n in sorted(statuses.items()))
        )
    row.longest = max((a.seconds for a in answers), default=0.0)
    told = Counter(a.kind for a in answers if a.status in (200, 201))
    cut = Counter(a.kind for a in answers if a.status == 0)
    made = {a.made for a in answers if a.made}
    setup = {p.client["id"] for p in load.people} | {p.document for p in load.people}

    row.stuck = settle(lambda: stuck_outbox(platform), lambda n: n == 0)
    usernames = [p.username for p in load.people]

    def counted() -> Counter:
        return _tally(audit_of(platform, usernames))

    settle(counted, lambda c: all(c[RECORD_OF[k]] >= told[k] for k in KINDS), timeout=30)
    records = audit_of(platform, usernames)
    recorded = _tally(records)
    # the setup's own client, upload and the login are not part of the load
    recorded["client.created"] -= len(load.people)
    recorded["document.uploaded"] -= len(load.people)
    for kind in KINDS:
        record = RECORD_OF[kind]
        missing = max(told[kind] - recorded[record], 0)
        extra = max(recorded[record] - told[kind] - cut[kind], 0)
        if missing or extra:  # which kind, for whoever reads a failed run
            row.notes.append(f"{kind}: {missing} missing, {extra} extra")
        row.missing += missing
        row.extra += extra
    created = {s for e, _, s, _ in records if e == "client.created"} - setup
    uploaded = {o for e, _, _, o in records if e == "document.uploaded"} - setup
    if created - made or uploaded - made:
        row.notes.append(f"recorded but told failed: {sorted((created | uploaded) - made)}")
    row.orphans = settle(lambda: orphans(platform), lambda n: n == 0, leftover_wait(platform))
    return row
