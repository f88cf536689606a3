"""Document bodies are ciphertext in the object store, checked whole before a download is served.

Each test reads and alters the real SeaweedFS bucket directly, the way someone with access
to the store's ports could, and looks at documents' own database.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
import sqlalchemy as sa
from minio.error import S3Error

from ops.platform import port_in_use, wait_for
from overdracht import config
from overdracht.db import make_engine
from services.documents.crypto import SEGMENT, generate_master_keys
from services.documents.service import DAMAGED, INLINE_BYTES
from services.documents.storage import BlobStore, make_client
from tests.support import pdf, settings

MiB = 1024 * 1024
KEY_SETTINGS = ("OVERDRACHT_MASTER_KEYS", "OVERDRACHT_MASTER_KEY_ID")


def recognisable_pdf(size: int) -> bytes:
    """A PDF whose text anyone would spot in the store: a name, a phrase, over and over."""
    text = b"BT /F1 12 Tf (Zwangerschapskaart mevrouw de Vries, uitgerekend 14-03) Tj ET\n"
    head = b"%PDF-1.7\n"
    filler = (text * (size // len(text) + 1))[: size - len(head) - 7]
    return head + filler + b"\n%%EOF\n"


@pytest.fixture(scope="module")
def store() -> BlobStore:
    return BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))


@pytest.fixture(scope="module")
def documents_db() -> Iterator[sa.Engine]:
    engine = make_engine(config.database_url("documents"), poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def stored(store: BlobStore, document_id: str) -> bytes:
    return b"".join(store.get(f"documents/{document_id}"))


def replace(store: BlobStore, document_id: str, data: bytes) -> None:
    store.put(f"documents/{document_id}", io.BytesIO(data))


def key_row(engine: sa.Engine, document_id: str) -> tuple[str, bytes] | None:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT master_key_id, wrapped_key FROM documents WHERE id = :id"),
            {"id": document_id},
        ).one_or_none()
    return None if row is None else (row[0], bytes(row[1]))


def documents_log(platform) -> str:
    return (platform.log_dir / "documents.log").read_text(errors="replace")


def test_the_store_holds_ciphertext_only_and_the_download_is_the_original(
    harness, store, documents_db
):
    api = harness.provider()
    client = harness.new_client(api)
    body = recognisable_pdf(300_000)
    uploaded = harness.upload(api, client["id"], body)
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert not {"wrapped_key", "master_key_id"} & set(document)  # the key never leaves

    raw = stored(store, document["id"])
    assert b"%PDF" not in raw and b"Zwangerschapskaart" not in raw and b"de Vries" not in raw
    assert raw != body and len(raw) > len(body)
    master_key_id, wrapped = key_row(documents_db, document["id"])
    assert master_key_id == config.get("OVERDRACHT_MASTER_KEY_ID")
    assert len(wrapped) > 32 and wrapped not in raw

    download = api.get(f"/documents/{document['id']}/content")
    assert download.status_code == 200
    assert download.content == body

    # a large download's second read is pinned to the object checked: the store honours it
    checked = store.open(f"documents/{document['id']}")
    checked.close()
    store.open(f"documents/{document['id']}", checked.etag).close()
    with pytest.raises(S3Error) as changed:
        store.open(f"documents/{document['id']}", '"0123456789abcdef0123456789abcdef"')
    assert changed.value.code == "PreconditionFailed"


def _flip(offset: int) -> Callable[[bytes, bytes], bytes]:
    def alter(ciphertext: bytes, other: bytes) -> bytes:
        altered = bytearray(ciphertext)
        altered[offset] ^= 0x20
        return bytes(altered)

    return alter


ALTERATIONS = {
    "a flipped byte in the first segment": _flip(1000),
    "a flipped byte in the last segment": _flip(-10),
    "a flipped header byte": _flip(5),
    # the classic truncation: whole segments dropped from the end (small: all but the header)
    "cut at a segment boundary": lambda c, other: c[: SEGMENT * (len(c) // SEGMENT)] or c[:40],
    "truncated by one byte": lambda c, other: c[:-1],
    "bytes appended": lambda c, other: c + b"%%EOF\n",
    "replaced by another document's object": lambda c, other: other,
    "emptied": lambda c, other: b"",
}


#: what a large document, read once, finds only as it is sent (see _checked_body): the
#: answer has begun, so the connection is cut before the document's last piece
FOUND_LATE = {("large", "a flipped byte in the last segment")}


@pytest.mark.parametrize("size", [200_000, INLINE_BYTES + 3 * MiB], ids=["small", "large"])
@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_an_altered_object_is_refused_and_nothing_of_it_is_served(
    harness, platform, store, alteration, size
):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(size)
    target = harness.upload(api, client["id"], body).json()
    other = harness.upload(api, client["id"], pdf(size)).json()
    original = stored(store, target["id"])

    replace(store, target["id"], ALTERATIONS[alteration](original, stored(store, other["id"])))
    log_before = len(documents_log(platform))
    if ("large" if size > INLINE_BYTES else "small", alteration) in FOUND_LATE:
        received = bytearray()
        with (
            pytest.raises(requests.exceptions.RequestException),
            api.get(f"/documents/{target['id']}/content", stream=True) as cut,
        ):
            assert cut.status_code == 200
            for chunk in cut.iter_content(MiB):
                received += chunk
        # authenticated bytes only, and never the whole document
        assert body.startswith(bytes(received)) and len(received) < len(body)
        log = documents_log(platform)[log_before:]
        assert f"document {target['id']} failed its check while it was sent" in log
    else:
        refused = api.get(f"/documents/{target['id']}/content")
        assert refused.status_code == 502, refused.text[:200]
        assert refused.headers["Content-Type"].startswith("application/json")
        assert refused.json() == {"error": {"code": "integrity_failure", "message": DAMAGED}}
        assert body[:16] not in refused.content and len(refused.content) < 200
        log = documents_log(platform)
        assert f"ERROR services.documents.service: document {target['id']} refused" in log

    # the document itself is not lost: with its bytes back, it is served again
    replace(store, target["id"], original)
    again = api.get(f"/documents/{target['id']}/content")
    assert again.status_code == 200
    assert again.content == body


def test_small_documents_served_whole_give_their_memory_back(harness, store):
    """Small documents are held in memory within a budget (OVERDRACHT_DOWNLOAD_HOLD_MB)
    and give their share back when sent: after many times the budget has been served, an
    altered small one is still checked whole, and refused before its first byte."""
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(6 * MiB)
    served = harness.upload(api, client["id"], body).json()
    budget = int(config.get("OVERDRACHT_DOWNLOAD_HOLD_MB")) * MiB
    for _ in range(budget // len(body) + 3):
        download = api.get(f"/documents/{served['id']}/content")
        assert download.status_code == 200
        assert download.content == body
    # one more, cut off by its reader before the end, gives its share back too
    with api.get(f"/documents/{served['id']}/content", stream=True) as cut:
        assert next(cut.iter_content(MiB))
    # several segments, the last one altered: read once, it would be found only as sent
    target = harness.upload(api, client["id"], pdf(2 * MiB)).json()
    replace(store, target["id"], _flip(-10)(stored(store, target["id"]), b""))
    refused = api.get(f"/documents/{target['id']}/content")
    assert refused.status_code == 502, refused.text[:200]


def test_a_large_documents_row_holds_the_digest_of_its_stored_ciphertext(
    harness, store, documents_db
):
    """What a large download is checked against before its first byte (a small one is
    decrypted whole to check it); a large one stored before the digest existed is too."""
    api = harness.provider()
    client = harness.new_client(api)
    large = harness.upload(api, client["id"], pdf(INLINE_BYTES + 3 * MiB)).json()
    small = harness.upload(api, client["id"], pdf(200_000)).json()

    def digest(document_id: str) -> str | None:
        with documents_db.connect() as connection:
            return connection.execute(
                sa.text("SELECT ciphertext_sha256 FROM documents WHERE id = :id"),
                {"id": document_id},
            ).scalar_one()

    assert digest(large["id"]) == hashlib.sha256(stored(store, large["id"])).hexdigest()
    assert digest(small["id"]) == hashlib.sha256(stored(store, small["id"])).hexdigest()
    # a large document stored before the digest existed is checked by decrypting it
    with documents_db.begin() as connection:
        connection.execute(
            sa.text("UPDATE documents SET ciphertext_sha256 = NULL WHERE id = :id"),
            {"id": large["id"]},
        )
    served = api.get(f"/documents/{large['id']}/content")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == large["sha256"]


def test_an_altered_wrapped_key_is_refused(harness, documents_db):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(20_000)
    document = harness.upload(api, client["id"], body).json()
    other = harness.upload(api, client["id"], pdf(20_000)).json()
    _, wrapped = key_row(documents_db, document["id"])
    _, other_wrapped = key_row(documents_db, other["id"])

    def set_key(value: bytes) -> None:
        with documents_db.begin() as connection:
            connection.execute(
                sa.text("UPDATE documents SET wrapped_key = :key WHERE id = :id"),
                {"key": value, "id": document["id"]},
            )

    for value in (other_wrapped, wrapped[:-1] + bytes([wrapped[-1] ^ 1])):
        set_key(value)
        refused = api.get(f"/documents/{document['id']}/content")
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "integrity_failure"
    set_key(wrapped)
    assert api.get(f"/documents/{document['id']}/content").content == body


def test_deleting_a_document_destroys_its_key_and_its_object(harness, store, documents_db):
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"]).json()
    assert key_row(documents_db, document["id"]) is not None
    assert store.exists(f"documents/{document['id']}")

    assert api.delete(f"/documents/{document['id']}").status_code == 204
    assert key_row(documents_db, document["id"]) is None
    assert not store.exists(f"documents/{document['id']}")
    # the row was the only place a data key was kept: no other column holds bytes
    with documents_db.connect() as connection:
        binary = connection.execute(
            sa.text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND data_type = 'bytea'"
            )
        ).all()
    assert [tuple(row) for row in binary] == [("documents", "wrapped_key")]


# --- rotation ------------------------------------------------------------------------------


def restart_documents(platform, values: dict[str, str]) -> None:
    """Restart the documents service with these settings: services read them at start."""
    platform.stop("documents")
    platform.env.update(values)
    platform.start_again("documents")
    wait_for(lambda: port_in_use(platform.ports.documents), "documents' HTTP port", 30)


def test_keys_rotate_rewraps_every_data_key_and_the_old_key_can_go(harness, platform, documents_db):
    api = harness.provider()
    client = harness.new_client(api)
    original = {name: platform.env[name] for name in KEY_SETTINGS}
    old_id = original["OVERDRACHT_MASTER_KEY_ID"]
    new_id = f"k-{uuid.uuid4().hex[:6]}"
    bodies: dict[str, bytes] = {}

    def upload() -> str:
        body = pdf(random.randrange(10_000, 3 * MiB))
        document = harness.upload(api, client["id"], body).json()
        bodies[document["id"]] = body
        return document["id"]

    def all_downloads_work() -> None:
        for document_id, body in bodies.items():
            download = api.get(f"/documents/{document_id}/content")
            assert download.status_code == 200, download.text[:200]
            assert download.content == body

    before = upload()

    # the operator makes a new master key; the services get both keys, the new one current
    made = harness.cli("keys", "new", new_id)
    assert made.returncode == 0, made.stderr
    both = dict(line.split("=", 1) for line in made.stdout.splitlines())
    assert both["OVERDRACHT_MASTER_KEY_ID"] == new_id
    assert set(json.loads(both["OVERDRACHT_MASTER_KEYS"])) == {old_id, new_id}
    only_new = {
        "OVERDRACHT_MASTER_KEYS": json.dumps(
            {new_id: json.loads(both["OVERDRACHT_MASTER_KEYS"])[new_id]}
        ),
        "OVERDRACHT_MASTER_KEY_ID": new_id,
    }
    try:
        restart_documents(platform, both)
        during = upload()
        assert key_row(documents_db, before)[0] == old_id
        assert key_row(documents_db, during)[0] == new_id
        all_downloads_work()

        wrapped_before = key_row(documents_db, before)[1]
        rotated = harness.cli("keys", "rotate", "--batch-size", "2")
        assert rotated.returncode == 0, rotated.stderr
        result = json.loads(rotated.stdout)
        assert result["master_key_id"] == new_id and result["failed"] == []
        assert result["rewrapped"] == result["documents"] - result["already_current"] >= 1
        assert key_row(documents_db, before)[0] == new_id
        assert key_row(documents_db, before)[1] != wrapped_before
        all_downloads_work()

        again = harness.cli("keys", "rotate")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["rewrapped"] == 0

        # a configuration that lacks a key some document needs is refused; nothing changes
        with settings(platform, generate_master_keys("k-elsewhere")):
            refused = harness.cli("keys", "rotate")
        assert refused.returncode == 2
        assert new_id in refused.stderr and "niets gewijzigd" in refused.stderr
        assert key_row(documents_db, before)[0] == new_id

        # the old master key is taken out of the configuration: everything still decrypts
        restart_documents(platform, only_new)
        upload()
        all_downloads_work()
    finally:
        # the rest of the session runs with the platform's own key: rotate back to it
        with settings(platform, {**both, "OVERDRACHT_MASTER_KEY_ID": old_id}):
            back = harness.cli("keys", "rotate")
        restart_documents(platform, original)
    assert back.returncode == 0, back.stderr
    assert key_row(documents_db, during)[0] == old_id
    all_downloads_work()
