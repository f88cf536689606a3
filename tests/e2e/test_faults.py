"""A fault gets a clear error and loses nothing: the object store goes away and comes back."""

from __future__ import annotations

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
    assert api.get(f"/documents/{kept['id']}/content").content is not None
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert {d["id"] for d in listed} == {kept["id"], again.json()["id"]}
