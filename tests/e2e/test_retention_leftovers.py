"""The sweep clears leftovers: unfinished uploads, objects without a row, spent rows.

Here the retention timer is slowed to once an hour, so every sweep is the CLI's and the
counts it prints are its own; one test restarts retention without a grace, since the
store's timestamps cannot be backdated.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from overdracht import config
from services.auth.models import (
    Activation,
    LoginChallenge,
    Provider,
    ProviderList,
    RecoveryCode,
)
from services.auth.models import Session as LoginSession
from services.clients.models import Search
from services.documents.models import Ticket
from services.documents.storage import BlobStore, make_client
from tests.support import database, enrol, log_in_with, mobile, pdf, restarted

QUIET = {"OVERDRACHT_RETENTION_INTERVAL_SECONDS": "3600"}


@pytest.fixture(scope="module")
def quiet(platform) -> Iterator[None]:
    with restarted(platform, "retention", QUIET):
        yield


def sweep(harness, expect_failed: list[str] | None = None) -> dict:
    result = harness.cli("retention", "sweep")
    assert result.returncode == (1 if expect_failed else 0), result.stderr
    swept = json.loads(result.stdout)
    assert swept["failed"] == (expect_failed or []), swept
    return swept


def store() -> BlobStore:
    return BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))


def unfinished(key: str) -> str:
    """Begin a multipart upload of key, send it one part, and never complete it."""
    client, bucket = make_client(), config.get("OVERDRACHT_S3_BUCKET")
    upload_id = client._create_multipart_upload(bucket, key, {})  # noqa: SLF001
    client._upload_part(bucket, key, b"part of a body", None, upload_id, 1)  # noqa: SLF001
    return upload_id


def open_uploads(prefix: str) -> set[str]:
    return {key for key, _, _ in store().unfinished_uploads(prefix)}


def provider_id(username: str) -> uuid.UUID:
    with database("auth") as session:
        return session.scalar(sa.select(Provider.id).where(Provider.username == username))


# --- objects ------------------------------------------------------------------------------


def test_leftover_objects_and_uploads_go_after_the_grace_and_are_counted(harness, platform, quiet):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(3000)
    document = harness.upload(api, client["id"], body).json()
    document_key = f"documents/{document['id']}"
    orphan, upload = f"documents/{uuid.uuid4()}", f"documents/{uuid.uuid4()}"
    outside, outside_upload = f"elsewhere/{uuid.uuid4()}", f"elsewhere/{uuid.uuid4()}"
    blobs = store()
    blobs.put(orphan, io.BytesIO(b"bytes nobody recorded"))
    blobs.put(outside, io.BytesIO(b"not ours to judge"))
    unfinished(upload)
    outside_id = unfinished(outside_upload)
    try:
        # within the grace (an hour): an upload may still be on its way to its row
        sweep(harness)
        assert blobs.exists(orphan) and upload in open_uploads("documents/")
        # only its row is to keep the document's object: its upload ticket is long spent
        with database("documents") as session:
            session.execute(
                sa.update(Ticket)
                .where(Ticket.document_id == uuid.UUID(document["id"]))
                .values(
                    expires_at=datetime.now(UTC) - timedelta(hours=1),
                    used_at=datetime.now(UTC) - timedelta(hours=2),
                )
            )

        with restarted(platform, "retention", {**QUIET, "OVERDRACHT_LEFTOVER_GRACE_MINUTES": "0"}):
            swept = sweep(harness)
            assert not blobs.exists(orphan)
            assert upload not in open_uploads("documents/")
            assert swept["leftover_objects"] >= 1 and swept["uploads_aborted"] >= 1, swept
            # a document's object stays; outside documents/ nothing is touched
            assert blobs.exists(document_key)
            assert blobs.exists(outside) and outside_upload in open_uploads("elsewhere/")

            # everything older is gone now: the next sweep counts exactly what it removes
            again, again_upload = f"documents/{uuid.uuid4()}", f"documents/{uuid.uuid4()}"
            blobs.put(again, io.BytesIO(b"another"))
            unfinished(again_upload)
            swept = sweep(harness)
            assert (swept["leftover_objects"], swept["uploads_aborted"]) == (1, 1), swept
            assert not blobs.exists(again) and again_upload not in open_uploads("documents/")
            assert sweep(harness)["leftover_objects"] == 0

        downloaded = api.get(f"/documents/{document['id']}/content")
        assert downloaded.status_code == 200 and downloaded.content == body
    finally:
        blobs.remove(outside)
        blobs.abort_upload(outside_upload, outside_id)


def test_an_object_a_live_upload_ticket_covers_is_kept(harness, platform, quiet):
    """Even without a grace: its upload has its ticket, and may not have reached its row."""
    document_id = uuid.uuid4()
    key = f"documents/{document_id}"
    token_hash = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    now = datetime.now(UTC)
    with database("documents") as session:
        session.add(
            Ticket(
                token_hash=token_hash,
                kind="upload",
                document_id=document_id,
                client_id=uuid.uuid4(),
                details={},
                expires_at=now + timedelta(minutes=2),
                used_at=now,
            )
        )
    blobs = store()
    blobs.put(key, io.BytesIO(b"an upload on its way"))
    upload = f"documents/{document_id}"
    unfinished(upload)
    with restarted(platform, "retention", {**QUIET, "OVERDRACHT_LEFTOVER_GRACE_MINUTES": "0"}):
        sweep(harness)
        assert blobs.exists(key) and upload in open_uploads("documents/")
        with database("documents") as session:
            assert session.get(Ticket, token_hash) is not None
            session.execute(
                sa.update(Ticket)
                .where(Ticket.token_hash == token_hash)
                .values(expires_at=now - timedelta(minutes=1), used_at=now - timedelta(minutes=3))
            )
        swept = sweep(harness)
        assert not blobs.exists(key) and upload not in open_uploads("documents/")
        assert swept["tickets"] >= 1 and swept["leftover_objects"] >= 1, swept
        with database("documents") as session:
            assert session.get(Ticket, token_hash) is None


# --- rows ---------------------------------------------------------------------------------


def _ticket(kind: str, expires_in: timedelta, used_ago: timedelta | None) -> str:
    now = datetime.now(UTC)
    token_hash = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    with database("documents") as session:
        session.add(
            Ticket(
                token_hash=token_hash,
                kind=kind,
                document_id=uuid.uuid4(),
                client_id=uuid.uuid4(),
                details={},
                expires_at=now + expires_in,
                used_at=None if used_ago is None else now - used_ago,
            )
        )
    return token_hash


def _tickets_left(hashes: list[str]) -> list[bool]:
    with database("documents") as session:
        return [session.get(Ticket, h) is not None for h in hashes]


def test_spent_and_expired_tickets_are_purged_live_ones_stay(harness, quiet):
    sweep(harness)  # what earlier tests left
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    gone = [
        _ticket("upload", -minute, None),  # expired, never used
        _ticket("download", minute, timedelta(seconds=1)),  # spent
        _ticket("upload", -hour, 2 * hour),  # claimed before the grace
    ]
    kept = [
        _ticket("upload", minute, None),  # still to be used
        _ticket("download", 2 * minute, None),
        _ticket("upload", -minute, 3 * minute),  # claimed within the grace: maybe under way
    ]
    # and the real thing: a download's ticket is spent the moment it is used
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"]).json()
    assert api.get(f"/documents/{document['id']}/content").status_code == 200

    swept = sweep(harness)
    assert _tickets_left(gone) == [False, False, False]
    assert _tickets_left(kept) == [True, True, True]
    assert swept["tickets"] >= len(gone) + 1, swept
    with database("documents") as session:
        left = session.scalars(
            sa.select(Ticket.kind).where(Ticket.document_id == uuid.UUID(document["id"]))
        ).all()
    assert left == ["upload"]  # its upload ticket, claimed a moment ago


def test_ended_and_expired_sessions_and_expired_challenges_are_purged(harness, quiet):
    sweep(harness)
    live = harness.provider()
    ended, expired, idle = harness.provider(), harness.provider(), harness.provider()
    assert ended.post("/logout").status_code == 204
    now = datetime.now(UTC)
    waiting, lapsed = harness.account(), harness.account()
    challenges = []
    for account in (waiting, lapsed):
        response = harness.anonymous().post(
            "/login", json={"username": account.username, "password": account.password}
        )
        assert response.status_code == 200, response.text
        challenges.append(uuid.UUID(response.json()["challenge"]))
    ids = {a: provider_id(a.account.username) for a in (live, ended, expired, idle)}
    with database("auth") as session:
        session.execute(
            sa.update(LoginSession)
            .where(LoginSession.provider_id == ids[expired])
            .values(expires_at=now - timedelta(seconds=1))
        )
        session.execute(
            sa.update(LoginSession)
            .where(LoginSession.provider_id == ids[idle])
            .values(last_seen_at=now - timedelta(hours=1))
        )
        session.execute(
            sa.update(LoginChallenge)
            .where(LoginChallenge.id == challenges[1])
            .values(expires_at=now - timedelta(seconds=1))
        )

    swept = sweep(harness)
    with database("auth") as session:
        sessions = {
            who: session.scalar(
                sa.select(sa.func.count())
                .select_from(LoginSession)
                .where(LoginSession.provider_id == ids[who])
            )
            for who in (live, ended, expired, idle)
        }
        left = [session.get(LoginChallenge, c) is not None for c in challenges]
    assert [sessions[w] for w in (live, ended, expired, idle)] == [1, 0, 0, 0]
    assert left == [True, False]
    assert swept["sessions"] >= 3 and swept["login_challenges"] >= 1, swept
    assert live.get("/me").status_code == 200
    assert ended.get("/me").status_code == 401


def test_links_that_ended_a_month_ago_and_spent_recovery_codes_are_purged(harness, quiet):
    beheerder = harness.provider(role="beheerder", region="Landelijk")
    emails = []
    for _ in range(2):
        data = {
            "full_name": f"Noor Nijhof {uuid.uuid4().hex[:4]}",
            "email": f"noor-{uuid.uuid4().hex[:8]}@vsv-test.nl",
            "phone": mobile(),
            "region": "VSV Opruimen",
            "role": "zorgverlener",
            "profession": "verloskundige",
        }
        assert beheerder.post("/accounts", json=data).status_code == 201
        emails.append(data["email"])
    old, fresh = (harness.activation_token(e) for e in emails)
    with database("auth") as session:
        session.execute(
            sa.update(Activation)
            .where(Activation.token_hash == hashlib.sha256(old.encode()).hexdigest())
            .values(expires_at=datetime.now(UTC) - timedelta(days=31))
        )
    account = harness.account()
    _, codes = enrol(harness.login(account))
    _, used = log_in_with(harness, account, lambda _: codes[0])
    assert used.status_code == 200, used.text

    swept = sweep(harness)
    assert swept["activations"] >= 1 and swept["recovery_codes"] >= 1, swept
    anonymous = harness.anonymous()
    gone = anonymous.post("/activation", json={"token": old})
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "activation_unknown"
    assert anonymous.post("/activation", json={"token": fresh}).status_code == 200
    with database("auth") as session:
        left = session.scalars(
            sa.select(RecoveryCode.used_at).where(
                RecoveryCode.provider_id == provider_id(account.username)
            )
        ).all()
    assert len(left) == 9 and not any(left)  # the spent one gone, the other nine kept
    _, again = log_in_with(harness, account, lambda _: codes[0])
    assert again.status_code == 401  # refused just as well without its row
    _, other = log_in_with(harness, account, lambda _: codes[1])
    assert other.status_code == 200, other.text


def test_a_list_left_waiting_a_month_is_closed_and_forgets_the_people_it_named(harness, quiet):
    coordinator = harness.provider(role="coordinator", region=f"VSV Wacht {uuid.uuid4().hex[:6]}")
    beheerder = harness.provider(role="beheerder", region="Landelijk")
    names = [f"Sanne Smit {uuid.uuid4().hex[:4]}" for _ in range(3)]
    lines = [
        f"{name};{uuid.uuid4().hex[:10]}@vsv-test.nl;{mobile()};verloskundige;De Linde;"
        for name in names
    ]
    header = "Naam;E-mailadres;Mobiel nummer;Beroep;Organisatie;AGB-code"

    def submit(*rows: str) -> str:
        content = "\r\n".join([header, *rows]).encode()
        answer = coordinator.post(
            "/provider-lists", files={"file": ("vsv.csv", content, "text/csv")}
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["list_id"]

    old, fresh = submit(*lines[:2]), submit(lines[2])
    with database("auth") as session:
        session.execute(
            sa.update(ProviderList)
            .where(ProviderList.id == uuid.UUID(old))
            .values(submitted_at=datetime.now(UTC) - timedelta(days=31))
        )

    swept = sweep(harness)
    assert swept["provider_lists"] >= 1 and swept["provider_list_rows"] >= 2, swept
    closed = beheerder.get(f"/provider-lists/{old}").json()
    assert closed["status"] == "expired" and closed["rows"] == [], closed
    waiting = beheerder.get(f"/provider-lists/{fresh}").json()
    assert waiting["status"] == "submitted" and len(waiting["rows"]) == 1, waiting
    registering = beheerder.post(f"/provider-lists/{old}/register")
    assert registering.status_code == 409, registering.text
    assert registering.json()["error"]["code"] == "list_closed"
    records = harness.audit_until(
        lambda es: any(e["object"]["id"] == old for e in es), event="provider_list.expired"
    )
    mine = [e for e in records if e["object"]["id"] == old]
    assert [(e["actor"]["type"], e["detail"]["discarded"]) for e in mine] == [("system", 2)]
    assert not any(name in json.dumps(records) for name in names)
    assert sweep(harness)["provider_list_rows"] == 0  # closed once; the fresh one still waits


def test_old_lookups_are_purged_recent_ones_still_let_a_provider_declare(harness, quiet):
    sweep(harness)
    creator = harness.provider()
    client = harness.new_client(creator)
    criteria = {"birth_date": client["birth_date"], "bsn": client["bsn"]}
    assert creator.post("/clients/search", json=criteria).json()["results"]
    colleague = harness.provider()
    assert colleague.post("/clients/search", json=criteria).json()["results"]
    creator_id = provider_id(creator.account.username)
    colleague_id = provider_id(colleague.account.username)
    retention = timedelta(hours=config.get_int("OVERDRACHT_SEARCH_RETENTION_HOURS"))
    with database("clients") as session:
        old = session.execute(
            sa.update(Search)
            .where(Search.provider_id == creator_id)
            .values(searched_at=datetime.now(UTC) - retention - timedelta(minutes=5))
        ).rowcount
    assert old == 2  # adding her, then finding her

    swept = sweep(harness)
    with database("clients") as session:
        counts = [
            session.scalar(
                sa.select(sa.func.count()).select_from(Search).where(Search.provider_id == p)
            )
            for p in (creator_id, colleague_id)
        ]
    assert counts == [0, 1]
    assert swept["searches"] >= old, swept
    declared = colleague.post(f"/clients/{client['id']}/relationship")
    assert declared.status_code == 201, declared.text


# --- faults -------------------------------------------------------------------------------


def test_with_the_object_store_down_the_rest_of_the_sweep_goes_on(harness, platform, quiet):
    sweep(harness)
    ended = harness.provider()
    assert ended.post("/logout").status_code == 204
    ended_id = provider_id(ended.account.username)
    log = platform.log_dir / "retention.log"
    said = "retention leftovers failed"
    failures = log.read_text().count(said)

    platform.stop("seaweedfs")
    try:
        swept = sweep(harness, expect_failed=["leftovers"])
        assert swept["sessions"] >= 1, swept
        assert "leftover_objects" not in swept
        with database("auth") as session:
            assert not session.scalar(
                sa.select(sa.func.count())
                .select_from(LoginSession)
                .where(LoginSession.provider_id == ended_id)
            )
        lines = [line for line in log.read_text().splitlines() if said in line]
        assert len(lines) == failures + 1, lines[failures:]
    finally:
        platform.start_object_store()

    swept = sweep(harness)  # the next sweep does it again
    assert {"leftover_objects", "uploads_aborted"} <= set(swept), swept
