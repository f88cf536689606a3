"""Documents vanish on their removal date; a client vanishes with her last document."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import pools
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.orm import Session

from overdracht import config
from overdracht.bus import standalone_replies
from overdracht.contracts import Unauthenticated, sign_system_token
from overdracht.db import make_engine
from overdracht.timezone import today
from services.documents.models import Document
from services.documents.storage import BlobStore, make_client
from tests.support import in_weeks


def objects_exist(document_ids):
    store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))
    return [store.exists(f"documents/{d}") for d in document_ids]


def test_sweep_as_of_removes_due_documents_then_the_empty_client(harness):
    api = harness.provider()
    client = harness.new_client(api)
    early, late = in_weeks(5), in_weeks(9)
    first = harness.upload(api, client["id"], removal_date=early).json()
    second = harness.upload(api, client["id"], removal_date=late).json()
    assert objects_exist([first["id"], second["id"]]) == [True, True]

    result = harness.cli("retention", "sweep", "--as-of", early)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["documents"] >= 1
    remaining = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["id"] for d in remaining] == [second["id"]]
    assert objects_exist([first["id"], second["id"]]) == [False, True]

    result = harness.cli("retention", "sweep", "--as-of", late)
    assert result.returncode == 0, result.stderr
    assert objects_exist([second["id"]]) == [False]
    found = api.post(
        "/clients/search", json={"birth_date": client["birth_date"], "bsn": client["bsn"]}
    )
    assert found.json() == {"results": []}
    assert api.get(f"/clients/{client['id']}/documents").status_code == 404

    events = harness.audit_until(
        lambda es: any(e["event"] == "client.deleted" for e in es), client_id=client["id"]
    )
    removals = [e for e in events if e["event"] in ("document.expired", "client.deleted")]
    assert sorted(e["event"] for e in removals) == [
        "client.deleted",
        "document.expired",
        "document.expired",
    ]
    assert all(e["actor"] == {"type": "system"} for e in removals)
    assert {e["object"]["id"] for e in removals if e["object"]} == {first["id"], second["id"]}


def test_a_sweep_with_nothing_due_removes_nothing(harness):
    api = harness.provider()
    client = harness.new_client(api)
    kept = harness.upload(api, client["id"], removal_date=in_weeks(30)).json()
    result = harness.cli("retention", "sweep")
    assert result.returncode == 0, result.stderr
    assert [d["id"] for d in api.get(f"/clients/{client['id']}/documents").json()["documents"]] == [
        kept["id"]
    ]


def test_a_bad_as_of_is_refused(harness):
    result = harness.cli("retention", "sweep", "--as-of", "volgende week")
    assert result.returncode == 2
    assert "fout" in result.stderr


def test_the_retention_timer_sweeps_by_itself(harness, platform):
    """The test platform sweeps every few seconds: a document due today disappears unasked."""
    api = harness.provider()
    client = harness.new_client(api)
    document_id = uuid.uuid4()
    store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))
    store.put(f"documents/{document_id}", io.BytesIO(b"%PDF-1.4 due today"))
    engine = make_engine(config.database_url("documents"), poolclass=sa.pool.NullPool)
    try:
        # nobody can upload a document that is already due, so place one behind the API's back
        with Session(engine) as session, session.begin():
            session.add(
                Document(
                    id=document_id,
                    client_id=uuid.UUID(client["id"]),
                    document_type="kraambed",
                    filename="due.pdf",
                    content_type="application/pdf",
                    size=18,
                    sha256="0" * 64,
                    removal_date=today(),
                    uploaded_at=datetime.now(UTC),
                    uploaded_by=uuid.uuid4(),
                    uploaded_by_name="Test",
                    object_key=f"documents/{document_id}",
                    wrapped_key=b"never decrypted",
                    master_key_id=config.get("OVERDRACHT_MASTER_KEY_ID"),
                )
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if session.get(Document, document_id) is None:
                    break
            time.sleep(0.5)
        with Session(engine) as session:
            assert session.get(Document, document_id) is None
    finally:
        engine.dispose()
    assert not store.exists(f"documents/{document_id}")


def test_removal_calls_need_the_system_signature(harness, platform, insider):
    """Anyone who can publish on the bus could call these; without the system key they fail."""
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"], removal_date=in_weeks(2)).json()
    forged = sign_system_token("retention", Ed25519PrivateKey.generate())
    replies = standalone_replies("retention")  # the insider poses as retention
    with ClusterRpcProxy({"AMQP_URI": insider}, timeout=30, reply_listener_cls=replies) as rpc:
        for call in (
            lambda: rpc.documents.expire_due(forged, in_weeks(40)),
            lambda: rpc.clients.delete_clients(forged, [client["id"]], "test"),
            lambda: rpc.documents.expire_due("not a token", in_weeks(40)),
        ):
            with pytest.raises(Unauthenticated):
                call()
    pools.reset()  # the proxy publishes through kombu's shared connection pool: close it
    assert [d["id"] for d in api.get(f"/clients/{client['id']}/documents").json()["documents"]] == [
        document["id"]
    ]
