"""A fault gets a clear error and loses nothing: the object store goes away and comes back."""

from __future__ import annotations

import psycopg2

from ops.provision import dsn
from overdracht import config
from services.documents.storage import BlobStore, make_client
from tests.support import pdf


def test_while_the_object_store_is_down_uploads_fail_cleanly(harness, platform):
    api = harness.provider()
    client = harness.new_client(api)
    kept = harness.upload(api, client["id"], pdf(5000)).json()

    platform.stop("seaweedfs")
    try:
        failed = harness.upload(api, client["id"], pdf(7000))
        assert failed.status_code in (502, 503), failed.text
        assert set(failed.json()["error"]) == {"code", "message"}
        download = api.get(f"/documents/{kept['id']}/content")
        assert download.status_code == 503
        listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
        assert [d["id"] for d in listed] == [kept["id"]]
    finally:
        platform.start_object_store()

    again = harness.upload(api, client["id"], pdf(9000))
    assert again.status_code == 201, again.text
    assert api.get(f"/documents/{kept['id']}/content").status_code == 200
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert {d["id"] for d in listed} == {kept["id"], again.json()["id"]}


def test_a_document_withdrawn_while_the_store_is_down_leaves_no_object_behind(harness, platform):
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"]).json()
    store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))
    key = f"documents/{document['id']}"

    platform.stop("seaweedfs")
    try:
        assert api.delete(f"/documents/{document['id']}").status_code == 204
        assert api.get(f"/documents/{document['id']}/content").status_code == 404
        # the store was away when the row went: its object is listed for removal
        assert key in _pending_removals(platform)
    finally:
        platform.start_object_store()

    # the next sweep removes it (the CLI's, or the timer's if that came first)
    assert harness.cli("retention", "sweep").returncode == 0
    assert not store.exists(key)
    assert key not in _pending_removals(platform)


def _pending_removals(platform) -> set[str]:
    connection = psycopg2.connect(dsn(platform.env["OVERDRACHT_DOCUMENTS_DB"]))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT object_key FROM pending_removals")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_events_wait_for_a_stopped_audit_service_and_arrive_once(harness, platform):
    """The audit service goes away: work goes on, and every event is recorded once it is back."""
    api = harness.provider()
    platform.stop("audit")
    try:
        client = harness.new_client(api)
        uploaded = harness.upload(api, client["id"])
        assert uploaded.status_code == 201
        listed = api.get(f"/clients/{client['id']}/documents")
        assert listed.status_code == 200  # the broker confirmed its event: that is enough
    finally:
        platform.start_again("audit")

    expected = {"client.created": 1, "document.uploaded": 1, "document.listed": 1}
    events = harness.audit_until(
        lambda es: len(es) >= sum(expected.values()), client_id=client["id"]
    )
    assert sorted(e["event"] for e in events) == sorted(
        k for k, n in expected.items() for _ in range(n)
    )
    verified = harness.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout
