"""Who may do what: no session, no treatment relationship, the wrong role."""

from __future__ import annotations

import uuid

import pytest

from tests.support import in_weeks


@pytest.fixture(scope="module")
def owner(harness):
    return harness.provider(region="Regio West")


@pytest.fixture(scope="module")
def client(harness, owner):
    return harness.new_client(owner)


@pytest.fixture(scope="module")
def document(harness, owner, client):
    response = harness.upload(owner, client["id"])
    assert response.status_code == 201
    return response.json()


def test_without_a_session_everything_is_401(harness, client, document):
    anonymous = harness.anonymous()
    calls = [
        ("get", "/me", {}),
        ("post", "/me/password", {"json": {"current_password": "x", "new_password": "y"}}),
        ("post", "/clients/search", {"json": {"birth_date": "1990-01-01", "bsn": "111222333"}}),
        ("post", "/clients", {"json": {}}),
        ("post", f"/clients/{client['id']}/relationship", {}),
        ("get", f"/clients/{client['id']}/documents", {}),
        ("post", f"/clients/{client['id']}/documents", {"files": {"file": ("a.pdf", b"%PDF")}}),
        ("get", f"/documents/{document['id']}/content", {}),
        ("delete", f"/documents/{document['id']}", {}),
        ("get", "/audit/events", {}),
    ]
    for method, path, kwargs in calls:
        response = getattr(anonymous, method)(path, **kwargs)
        assert response.status_code == 401, (method, path, response.text)
        assert set(response.json()["error"]) == {"code", "message"}
    forged = harness.anonymous()
    forged.headers["Authorization"] = "Bearer " + uuid.uuid4().hex
    assert forged.get("/me").status_code == 401


def test_without_a_relationship_documents_are_403_and_audited(harness, client, document):
    stranger = harness.provider(region="Regio Oost")
    attempts = [
        stranger.get(f"/clients/{client['id']}/documents"),
        harness.upload(stranger, client["id"], removal_date=in_weeks(3)),
        stranger.get(f"/documents/{document['id']}/content"),
        stranger.delete(f"/documents/{document['id']}"),
    ]
    assert [r.status_code for r in attempts] == [403, 403, 403, 403]

    events = harness.audit_until(
        lambda es: len(es) >= 4, actor=stranger.account.username, event="access.denied"
    )
    assert sorted(e["detail"]["action"] for e in events) == sorted(
        ["document.listed", "document.uploaded", "document.downloaded", "document.deleted"]
    )
    assert all(e["subject"] == client["id"] and e["outcome"] == "denied" for e in events)
    # and nothing about the client leaked to the stranger: no list, no download record
    assert not harness.audit(actor=stranger.account.username, event="document.listed")


def test_declaring_a_relationship_needs_a_search_first(harness, client):
    guesser = harness.provider()
    response = guesser.post(f"/clients/{client['id']}/relationship")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "search_first"
    assert guesser.get(f"/clients/{client['id']}/documents").status_code == 403


def test_only_the_uploader_withdraws_a_document(harness, owner, client, document):
    colleague = harness.provider()
    colleague.post(
        "/clients/search", json={"birth_date": client["birth_date"], "bsn": client["bsn"]}
    )
    assert colleague.post(f"/clients/{client['id']}/relationship").status_code == 201
    response = colleague.delete(f"/documents/{document['id']}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_uploader"
    assert colleague.get(f"/documents/{document['id']}/content").status_code == 200


@pytest.mark.parametrize("role", ["auditor", "beheerder", "coordinator"])
def test_other_roles_see_no_client_data(harness, client, document, role):
    other = harness.provider(role=role, region="Landelijk")
    search = other.post(
        "/clients/search", json={"birth_date": client["birth_date"], "bsn": client["bsn"]}
    )
    assert search.status_code == 403
    assert other.post("/clients", json={"maiden_name": "X"}).status_code == 403
    assert other.get(f"/clients/{client['id']}/documents").status_code == 403
    assert other.get(f"/documents/{document['id']}/content").status_code == 403
    denied = harness.audit_until(
        lambda es: len(es) >= 4, actor=other.account.username, event="access.denied"
    )
    assert len(denied) == 4


def test_only_auditors_read_the_audit_log(harness, owner):
    for role in ("zorgverlener", "beheerder", "coordinator"):
        api = owner if role == "zorgverlener" else harness.provider(role=role, region="Landelijk")
        response = api.get("/audit/events")
        assert response.status_code == 403, role
    assert harness.auditor.get("/audit/events", params={"limit": 1}).status_code == 200


def test_a_session_cookie_alone_cannot_change_anything_through_the_api(harness):
    account = harness.account()
    browserish = harness.anonymous()
    challenge = browserish.post(
        "/login", json={"username": account.username, "password": account.password}
    ).json()["challenge"]
    verified = browserish.post(
        "/login/verify", json={"challenge": challenge, "code": harness.sms_code(account.phone)}
    )
    assert verified.status_code == 200 and browserish.cookies.get("overdracht_session")

    assert browserish.get("/me").status_code == 200  # reading with the cookie is fine
    data = {
        "maiden_name": "Smit",
        "birth_date": "1990-01-01",
        "bsn": "111222333",
        "phone": "0611111111",
    }
    assert browserish.post("/clients", json=data).status_code == 401
    created = browserish.post("/clients", json=data, headers={"X-Requested-With": "fetch"})
    assert created.status_code in (201, 409)

    # a cookie-only logout is refused too, not answered 204 while the session lives on
    token = browserish.cookies.get("overdracht_session")
    assert browserish.post("/logout").status_code == 401
    assert browserish.get("/me").status_code == 200
    ended = browserish.post("/logout", headers={"X-Requested-With": "fetch"})
    assert ended.status_code == 204
    gone = harness.anonymous().get("/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
