"""The first handover, end to end over /api/v1: each step, and exactly one audit record each."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from gateway import create_app
from overdracht import config
from overdracht.contracts import ENVELOPE_FIELDS
from tests.support import in_weeks, pdf, valid_bsn


def test_login_me_and_logout(harness):
    account = harness.account(region="Regio Oost")
    api = harness.login(account)

    me = api.get("/me")
    assert me.status_code == 200
    assert {
        k: me.json()[k] for k in ("username", "full_name", "phone", "email", "region", "role")
    } == {
        "username": account.username,
        "full_name": account.full_name,
        "phone": account.phone,
        "email": account.email,
        "region": "Regio Oost",
        "role": "zorgverlener",
    }
    assert api.post("/logout").status_code == 204
    assert api.get("/me").status_code == 401

    events = harness.audit_until(
        lambda es: {"provider.logged_in", "provider.logged_out"} <= {e["event"] for e in es},
        actor=account.username,
    )
    assert Counter(e["event"] for e in events) == {
        "provider.logged_in": 1,
        "provider.logged_out": 1,
    }


def test_failed_logins_are_refused_alike_and_audited(harness):
    account = harness.account()
    anonymous = harness.anonymous()

    wrong_password = anonymous.post(
        "/login", json={"username": account.username, "password": "x" * 20}
    )
    unknown_user = anonymous.post("/login", json={"username": "niemand-hier", "password": "x" * 20})
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()  # no hint which one was wrong

    challenge = anonymous.post(
        "/login", json={"username": account.username, "password": account.password}
    ).json()["challenge"]
    code = harness.sms_code(account.phone)
    wrong = "000000" if code != "000000" else "111111"
    assert (
        anonymous.post("/login/verify", json={"challenge": challenge, "code": wrong}).status_code
        == 401
    )

    events = harness.audit_until(
        lambda es: len([e for e in es if e["event"] == "provider.login_failed"]) >= 2,
        actor=account.username,
    )
    failed = [e for e in events if e["event"] == "provider.login_failed"]
    assert sorted(e["detail"]["reason"] for e in failed) == ["wrong_code", "wrong_password"]
    assert all(e["outcome"] == "failure" for e in failed)
    anonymous_failures = harness.audit_until(
        lambda es: any(e["actor"].get("username") == "niemand-hier" for e in es),
        event="provider.login_failed",
    )
    assert any(e["actor"].get("username") == "niemand-hier" for e in anonymous_failures)


def test_a_handover_between_two_regions(harness):
    first = harness.provider(region="Regio Noord")
    second = harness.provider(region="Regio Zuid", profession="gynaecoloog")
    bsn, phone, born = valid_bsn(), "0612345678", "1991-07-02"

    # not there yet: the search finds nothing, and says so in the audit log
    miss = first.post("/clients/search", json={"birth_date": born, "bsn": bsn})
    assert miss.status_code == 200 and miss.json() == {"results": []}

    created = first.post(
        "/clients",
        json={
            "maiden_name": "de Vries",
            "birth_date": born,
            "bsn": bsn,
            "phone": phone,
            "due_date": in_weeks(10),
        },
    )
    assert created.status_code == 201
    client = created.json()
    assert client["name"] == "de Vries"

    # one document of each type, each with its own removal date
    bodies = {}
    for i, document_type in enumerate(config.document_types()):
        body = pdf(10_000 + i)
        response = harness.upload(
            first,
            client["id"],
            body,
            document_type=document_type,
            removal_date=in_weeks(12 + i),
            filename=f"{document_type}.pdf",
        )
        assert response.status_code == 201, response.text
        document = response.json()
        assert document["document_type"] == document_type
        assert document["sha256"] == hashlib.sha256(body).hexdigest()
        assert document["size"] == len(body)
        assert document["content_type"] == "application/pdf"
        assert document["uploaded_by"] == first.account.full_name
        bodies[document["id"]] = body

    listed = first.get(f"/clients/{client['id']}/documents")
    assert listed.status_code == 200
    assert {d["id"] for d in listed.json()["documents"]} == set(bodies)

    some_id = next(iter(bodies))
    download = first.get(f"/documents/{some_id}/content")
    assert download.status_code == 200
    assert download.content == bodies[some_id]
    assert download.headers["Content-Disposition"].startswith("attachment")

    # the second provider, elsewhere, finds her three ways and takes over
    for criteria in ({"bsn": bsn}, {"phone": "06-12345678"}, {"bsn": bsn, "phone": phone}):
        found = second.post("/clients/search", json={"birth_date": born, **criteria})
        assert found.status_code == 200
        assert found.json()["results"] == [{"id": client["id"], "name": "de Vries"}]
    assert second.get(f"/clients/{client['id']}/documents").status_code == 403
    declared = second.post(f"/clients/{client['id']}/relationship")
    assert declared.status_code == 201
    listed = second.get(f"/clients/{client['id']}/documents")
    assert {d["id"] for d in listed.json()["documents"]} == set(bodies)
    for document_id, body in bodies.items():
        assert second.get(f"/documents/{document_id}/content").content == body

    # the uploader withdraws one; it is gone for everyone
    assert first.delete(f"/documents/{some_id}").status_code == 204
    assert second.get(f"/documents/{some_id}/content").status_code == 404
    remaining = second.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert some_id not in {d["id"] for d in remaining}

    # every step above left exactly one record about this client
    expected = Counter(
        {
            "client.created": 1,
            "document.uploaded": len(bodies),
            "document.listed": 3,
            "document.downloaded": 1 + len(bodies),
            "document.delivery": 1 + len(bodies),  # each download's outcome, after its grant
            "client.searched": 3,
            "access.denied": 1,
            "relationship.established": 1,
            "document.deleted": 1,
        }
    )
    events = harness.audit_until(
        lambda es: Counter(e["event"] for e in es) == expected, client_id=client["id"]
    )
    assert Counter(e["event"] for e in events) == expected
    assert all(e["delivered"] for e in events if e["event"] == "document.downloaded")
    for event in events:
        assert set(ENVELOPE_FIELDS) <= set(event)
        assert event["subject"] == client["id"]
    searches = harness.audit(actor=first.account.username, event="client.searched")
    assert [e["outcome"] for e in searches] == ["not_found"]
    assert len({e["event_id"] for e in events}) == len(events)


def test_no_bsn_or_phone_in_any_audit_record_or_log(harness, platform):
    api = harness.provider()
    bsn, phone = valid_bsn(), "0687654321"
    client = harness.new_client(api, bsn=bsn, phone=phone)
    api.post("/clients/search", json={"birth_date": client["birth_date"], "phone": phone})
    api.post("/clients/search", json={"birth_date": "1980-01-01", "bsn": bsn})
    api.post("/clients", json={**client, "id": None})  # a duplicate: refused, audited

    harness.audit_until(lambda es: len(es) >= 4, client_id=client["id"])
    everything = str(harness.audit())
    logs = "".join(p.read_text(errors="replace") for p in (platform.var / "log").glob("*.log"))
    for secret in (bsn, phone):
        assert secret not in everything
        assert secret not in logs


def test_adding_an_existing_client_is_refused_and_audited_with_her_id(harness):
    first, second = harness.provider(), harness.provider()
    client = harness.new_client(first)
    again = {k: client[k] for k in ("maiden_name", "birth_date", "bsn", "phone")}
    response = second.post("/clients", json=again)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_exists"
    events = harness.audit_until(
        lambda es: any(e["outcome"] == "conflict" for e in es), client_id=client["id"]
    )
    conflicts = [e for e in events if e["outcome"] == "conflict"]
    assert [e["actor"]["username"] for e in conflicts] == [second.account.username]


def test_declaring_twice_at_once_is_one_relationship(harness):
    first, second = harness.provider(), harness.provider()
    client = harness.new_client(first)
    second.post("/clients/search", json={"birth_date": client["birth_date"], "bsn": client["bsn"]})
    answers = [second.post(f"/clients/{client['id']}/relationship") for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    events = harness.audit_until(
        lambda es: any(e["event"] == "relationship.established" for e in es),
        client_id=client["id"],
    )
    assert [e["event"] for e in events].count("relationship.established") == 1


def test_a_name_outside_latin_1_downloads_under_its_own_name(harness):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(3000)
    document = harness.upload(api, client["id"], body, filename="Şahin-Ωmega.pdf").json()
    assert document["filename"] == "Şahin-Ωmega.pdf"
    response = api.get(f"/documents/{document['id']}/content")
    assert response.status_code == 200 and response.content == body
    assert "filename*=UTF-8''%C5%9Eahin-%CE%A9mega.pdf" in response.headers["Content-Disposition"]


def test_head_on_a_download_is_refused_and_not_audited(harness):
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"]).json()
    assert api.head(f"/documents/{document['id']}/content").status_code == 405
    harness.audit_until(lambda es: len(es) >= 2, client_id=client["id"])
    assert not harness.audit(client_id=client["id"], event="document.downloaded")


def test_an_overlong_username_is_refused_and_the_audit_log_keeps_going(harness):
    anonymous = harness.anonymous()
    response = anonymous.post("/login", json={"username": "a" * 100, "password": "x" * 20})
    assert response.status_code == 401
    account = harness.account()
    harness.login(account)  # a later event still reaches the log
    assert harness.audit_until(
        lambda es: len(es) == 1, actor=account.username, event="provider.logged_in"
    )
    refused = harness.audit(actor="a" * 64, event="provider.login_failed")
    assert [e["detail"]["reason"] for e in refused] == ["too_long"]


def test_the_openapi_document_describes_every_call(harness):
    spec = harness.anonymous().get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    # every route of the API, from the gateway's own table, and its methods
    routes: dict[str, set[str]] = {}
    for rule in create_app().url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
            routes.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    assert {path: set(ops) for path, ops in spec["paths"].items()} == {
        path: {m.lower() for m in methods} for path, methods in routes.items()
    }
    types = spec["components"]["schemas"]["Document"]["properties"]["document_type"]["enum"]
    assert types == list(config.document_types())
