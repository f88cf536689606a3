"""The audit chain survives its own database: a superuser truncates it, verify names it.

Runs against the live platform's audit database. The records it deletes are put back
exactly as they were, so the log is whole again for whatever runs next.
"""

from __future__ import annotations

import json
import time

import psycopg2
from sqlalchemy.engine import make_url

from ops.provision import dsn
from overdracht import config

COLUMNS = (
    "seq, event_id, event, occurred_at, recorded_at, actor_id, actor_username, subject, "
    "outcome, envelope, prev_hash, hash"
)


def _superuser(platform) -> psycopg2.extensions.connection:
    database = make_url(platform.env["OVERDRACHT_AUDIT_DB"]).database
    connection = psycopg2.connect(dsn(config.get("OVERDRACHT_POSTGRES_ADMIN_URL"), database))
    connection.autocommit = True
    return connection


def _checkpointed(platform) -> int:
    """The record count of the newest checkpoint audit has signed."""
    path = platform.var / "audit-checkpoints" / "checkpoints.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["records"] if lines else 0


def test_deleting_the_newest_records_is_named_by_verify(harness, platform):
    api = harness.provider()
    harness.new_client(api)
    harness.new_client(api)
    time.sleep(1)
    deadline = time.monotonic() + 30
    connection = _superuser(platform)
    try:
        with connection.cursor() as cur:
            while True:  # wait until the newest records are covered by a signed checkpoint
                cur.execute("SELECT max(seq) FROM audit_records")
                newest = cur.fetchone()[0]
                if _checkpointed(platform) >= newest:
                    break
                assert time.monotonic() < deadline, "no checkpoint covers the newest records"
                time.sleep(0.5)
            # audit is stopped while the chain is cut, so that no late event is appended
            # in the gap (the records are put back afterwards); its events wait in the queue
            platform.stop("audit")
            first = newest - 2
            cur.execute(f"SELECT {COLUMNS} FROM audit_records WHERE seq >= %s", (first,))
            kept = cur.fetchall()
            # what a superuser can do and the runtime role cannot: switch the triggers off
            cur.execute("SET session_replication_role = replica")
            cur.execute("DELETE FROM audit_records WHERE seq >= %s", (first,))
            try:
                verified = harness.cli("audit", "verify")
                assert verified.returncode == 1, verified.stdout
                problems = " ".join(json.loads(verified.stdout)["problems"])
                assert f"{first}-{newest}" in problems and "missing" in problems
            finally:
                placeholders = ", ".join(["%s"] * len(kept[0]))
                for row in kept:
                    cur.execute(
                        f"INSERT INTO audit_records ({COLUMNS}) VALUES ({placeholders})",
                        [json.dumps(v) if isinstance(v, dict) else v for v in row],
                    )
                cur.execute("SET session_replication_role = origin")
                platform.start_again("audit")
    finally:
        connection.close()
    assert harness.cli("audit", "verify").returncode == 0
