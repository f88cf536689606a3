"""Bad input is refused with the API's error shape and changes nothing."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

import pytest

from tests.support import PASSWORD, Account, in_weeks, mobile, pdf, valid_bsn

MiB = 1024 * 1024


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


@pytest.fixture(scope="module")
def provider(harness):
    return harness.provider()


@pytest.fixture(scope="module")
def client(harness, provider):
    return harness.new_client(provider, due_date=in_weeks(8))


@pytest.mark.parametrize(
    ("criteria", "code"),
    [
        ({"birth_date": "1990-01-01", "bsn": "123456789"}, "invalid_bsn"),
        ({"birth_date": "1990-01-01", "phone": "061234567"}, "invalid_phone"),
        ({"birth_date": "1990-01-01", "phone": "06123456789"}, "invalid_phone"),
        ({"birth_date": "1990-01-01", "phone": "0612"}, "invalid_phone"),
        ({"birth_date": "1990-01-01", "phone": "0000000000"}, "invalid_phone"),
        ({"birth_date": "1990-01-01", "phone": "+1 202 555 0100"}, "invalid_phone"),
        ({"bsn": "111222333"}, "missing_birth_date"),
        ({"birth_date": "1990-02-30", "bsn": "111222333"}, "invalid_birth_date"),
        ({"birth_date": "1990-01-01"}, "missing_bsn_or_phone"),
    ],
)
def test_bad_searches_are_refused(harness, provider, criteria, code):
    error = error_of(provider.post("/clients/search", json=criteria), 422)
    assert error["code"] == code


@pytest.mark.parametrize(
    "text",
    [
        "[" * 60000,  # under the 64 KiB cap on small bodies: the parser would reach it
        '{"birth_date": ' + "[" * 30000 + "]" * 30000 + "}",
        '{"a":' * 10000 + "1" + "}" * 10000,
    ],
)
@pytest.mark.parametrize("path", ["/login", "/login/verify", "/clients/search", "/clients"])
def test_json_nested_thousands_deep_is_a_400_not_a_500(harness, provider, path, text):
    api = provider if path.startswith("/clients") else harness.anonymous()
    response = api.post(path, data=text, headers={"Content-Type": "application/json"})

    assert error_of(response, 400)["code"] == "malformed_request"


def test_json_over_the_small_body_cap_is_a_413(provider):
    response = provider.post(
        "/clients/search", data="[" * 100000, headers={"Content-Type": "application/json"}
    )

    assert error_of(response, 413)
    # the body was left unread: the connection is not offered for the next request
    assert response.headers["Connection"] == "close"


def test_a_malformed_json_body_is_a_400(provider):
    response = provider.post(
        "/clients/search", data="{birth_date: 1990", headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "malformed_request"
    assert error_of(
        provider.post("/clients", data="[]", headers={"Content-Type": "application/json"}), 400
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"bsn": "123456789"}, "invalid_bsn"),
        ({"phone": "12345"}, "invalid_phone"),
        ({"phone": "0000000000"}, "invalid_phone"),
        ({"phone": "0670123456"}, "invalid_phone"),  # ten digits, no such number range
        ({"birth_date": ""}, "missing_birth_date"),
        ({"maiden_name": ""}, "missing_maiden_name"),
        ({"maiden_name": "Jansen <script>"}, "invalid_maiden_name"),
        ({"maiden_name": "J\u0430nsen"}, "invalid_maiden_name"),  # Cyrillic а
        ({"maiden_name": "\uff2a\uff41\uff4e\uff53\uff45\uff4e"}, "invalid_maiden_name"),
        ({"maiden_name": "\U0001d409\U0001d41a\U0001d427\U0001d42c"}, "invalid_maiden_name"),
    ],
)
def test_a_bad_new_client_is_refused_and_not_created(harness, provider, change, code):
    data = {
        "maiden_name": "Bakker",
        "birth_date": "1994-11-30",
        "bsn": valid_bsn(),
        "phone": "0611122233",
        **change,
    }
    assert error_of(provider.post("/clients", json=data), 422)["code"] == code
    if change.get("bsn") is None and data["birth_date"]:
        found = provider.post(
            "/clients/search", json={"birth_date": data["birth_date"], "bsn": data["bsn"]}
        )
        assert found.json() == {"results": []}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"removal_date": date.today().isoformat()}, "removal_date_not_future"),
        (
            {"removal_date": (date.today() - timedelta(days=3)).isoformat()},
            "removal_date_not_future",
        ),
        (
            {"removal_date": in_weeks(8 + 7)},
            "removal_date_too_late",
        ),  # due date + 6 weeks is the cap
        ({"removal_date": "morgen"}, "invalid_removal_date"),
        ({"removal_date": ""}, "missing_removal_date"),
        ({"document_type": "recept"}, "invalid_document_type"),
    ],
)
def test_bad_document_metadata_is_refused_and_nothing_stored(
    harness, provider, client, fields, code
):
    before = provider.get(f"/clients/{client['id']}/documents").json()["documents"]
    data = {"document_type": "kraambed", "removal_date": in_weeks(4), **fields}
    response = provider.post(
        f"/clients/{client['id']}/documents",
        data=data,
        files={"file": ("a.pdf", pdf(), "application/pdf")},
    )
    assert error_of(response, 422)["code"] == code
    assert provider.get(f"/clients/{client['id']}/documents").json()["documents"] == before


@pytest.mark.parametrize(
    ("maiden_name", "stored"),
    [
        ("van der Berg", "van der Berg"),
        ("D'Ancona", "D'Ancona"),
        ("Smit-Jansen", "Smit-Jansen"),
        ("Bront\u00eb-S\u00f8ndergaard", "Brontë-Søndergaard"),
        ("Bronte\u0308", "Brontë"),  # typed decomposed, stored composed (NFC)
    ],
)
def test_a_name_in_one_script_is_accepted_and_stored_composed(provider, maiden_name, stored):
    data = {"maiden_name": maiden_name, "birth_date": "1991-06-02", "bsn": valid_bsn()}
    created = provider.post("/clients", json={**data, "phone": mobile()})

    assert created.status_code == 201, created.text
    assert created.json()["name"] == stored
    found = provider.post(
        "/clients/search", json={"birth_date": data["birth_date"], "bsn": data["bsn"]}
    )
    assert found.json()["results"] == [{"id": created.json()["id"], "name": stored}]


def test_a_refused_name_is_explained_in_dutch(provider):
    data = {"maiden_name": "J\u0430nsen", "birth_date": "1991-06-02", "bsn": valid_bsn()}
    response = provider.post("/clients", json={**data, "phone": mobile()})

    error = error_of(response, 422)
    assert error["code"] == "invalid_maiden_name"
    assert "één schrift" in error["message"]


def test_a_client_is_found_by_her_phone_however_it_is_typed(provider):
    national = f"06{random.choice('123458')}{random.randrange(10**7):07d}"
    spaced = f"+31 6 {national[2:6]} {national[6:]}"
    data = {"maiden_name": "de Groot", "birth_date": "1988-09-21", "bsn": valid_bsn()}
    assert provider.post("/clients", json={**data, "phone": spaced}).status_code == 201

    for typed in (
        national,
        f"00316{national[2:]}",
        f"06-{national[2:]}",
        f"+31 (0)6 {national[2:]}",
    ):
        found = provider.post(
            "/clients/search", json={"birth_date": data["birth_date"], "phone": typed}
        )
        assert [r["name"] for r in found.json()["results"]] == ["de Groot"], typed


def test_a_provider_typed_with_plus_31_gets_her_sms_on_the_national_number(harness):
    from ops.cli import add_provider

    national = mobile()
    username = f"intl-{uuid.uuid4().hex[:8]}"
    account = Account(
        username=username,
        password=PASSWORD,
        phone=national,
        role="coordinator",
        region="Regio Noord",
        full_name="Anna de Wit",
        email=f"{username}@example.nl",
    )
    created = add_provider(
        {
            "username": username,
            "full_name": account.full_name,
            "email": account.email,
            "phone": f"+31 6 {national[2:6]} {national[6:]}",
            "region": account.region,
            "role": account.role,
            "password": PASSWORD,
        },
        {"type": "operator", "via": "tests"},
    )
    assert created["phone"] == national

    api = harness.login(account)  # reads the code sent to the national form
    assert api.get("/me").json()["phone"] == national


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"phone": "020-1234567"}, "invalid_phone"),  # no mobile: no SMS code
        ({"phone": "0661234567"}, "invalid_phone"),  # a pager
        ({"full_name": "\u0410nna de Wit"}, "invalid_full_name"),  # Cyrillic А
        ({"full_name": "\uff21nna de Wit"}, "invalid_full_name"),  # fullwidth Ａ
    ],
)
def test_a_provider_without_a_dutch_mobile_or_with_a_mixed_name_is_not_registered(
    harness, change, code
):
    from ops.cli import add_provider
    from overdracht.contracts import InvalidInput

    username = f"bad-{uuid.uuid4().hex[:8]}"
    data = {
        "username": username,
        "full_name": "Anna de Wit",
        "email": f"{username}@example.nl",
        "phone": mobile(),
        "region": "Regio Noord",
        "role": "coordinator",
        "password": PASSWORD,
        **change,
    }
    with pytest.raises(InvalidInput) as caught:
        add_provider(data, {"type": "operator", "via": "tests"})
    assert caught.value.code == code
    login = harness.anonymous().post("/login", json={"username": username, "password": PASSWORD})
    assert login.status_code != 200


def _uploaded(harness, provider, client_id, body, filename):
    response = harness.upload(provider, client_id, body, filename=filename)
    assert response.status_code == 201, response.text
    return response.json()


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64)


@pytest.mark.parametrize(
    ("body", "sent_as", "stored"),
    [
        (pdf(), "x.html", "x.pdf"),
        (pdf(), "verslag", "verslag.pdf"),
        (JPEG, "scan.JPG", "scan.JPG"),
        (JPEG, "scan.png", "scan.jpg"),
    ],
    ids=["pdf-as-html", "pdf-without-extension", "jpeg-as-JPG", "jpeg-as-png"],
)
def test_a_stored_filename_has_the_extension_of_its_bytes(harness, provider, body, sent_as, stored):
    owner = harness.new_client(provider)
    document = _uploaded(harness, provider, owner["id"], body, sent_as)
    assert document["filename"] == stored

    listed = provider.get(f"/clients/{owner['id']}/documents").json()["documents"]
    assert [d["filename"] for d in listed] == [stored]
    download = provider.get(f"/documents/{document['id']}/content")
    assert download.status_code == 200
    assert download.content == body
    assert f'filename="{stored}"' in download.headers["Content-Disposition"]


def test_a_file_that_is_not_an_allowed_type_is_refused(provider, client, harness):
    response = harness.upload(
        provider,
        client["id"],
        b"#!/bin/sh\nrm -rf /\n" * 100,
        removal_date=in_weeks(4),
        filename="x.sh",
    )
    assert error_of(response, 422)["code"] == "invalid_content_type"
    assert provider.get(f"/clients/{client['id']}/documents").json()["documents"] == []


def test_a_file_over_100_mib_is_refused_and_nothing_stored(harness, provider, client):
    too_big = pdf(100 * MiB + 1)
    response = harness.upload(provider, client["id"], too_big, removal_date=in_weeks(4))
    assert error_of(response, 413)["code"] == "file_too_large"
    assert provider.get(f"/clients/{client['id']}/documents").json()["documents"] == []


def test_an_upload_without_a_file_or_not_multipart_is_refused(provider, client):
    no_file = provider.post(
        f"/clients/{client['id']}/documents",
        files={"document_type": (None, "kraambed"), "removal_date": (None, in_weeks(2))},
    )
    assert error_of(no_file, 422)["code"] == "missing_file"
    not_multipart = provider.post(f"/clients/{client['id']}/documents", json={"file": "x"})
    assert error_of(not_multipart, 422)["code"] == "not_multipart"


def test_a_large_upload_refused_before_its_file_is_read_still_gets_its_answer(
    harness, provider, client
):
    """The refusal comes before the file part is read; the sender must hear it, not a reset."""
    response = harness.upload(provider, client["id"], pdf(30 * MiB), removal_date=in_weeks(30))
    assert error_of(response, 422)["code"] == "removal_date_too_late"


@pytest.mark.parametrize("size", [64 * 1024 + 1, 5 * MiB, 100 * MiB + 1])
@pytest.mark.parametrize("token", [None, "not-a-session"])
def test_an_upload_without_a_valid_session_is_a_401_whatever_its_size(
    harness, provider, client, size, token
):
    """Not 413: the small-body cap must not answer for a refused session."""
    anonymous = harness.anonymous()
    if token:
        anonymous.headers["Authorization"] = f"Bearer {token}"
    response = harness.upload(anonymous, client["id"], pdf(size), removal_date=in_weeks(4))
    # no session, or one auth does not know: either way a 401 that says so
    assert error_of(response, 401)["code"] in {"unauthenticated", "session_expired"}
    assert provider.get(f"/clients/{client['id']}/documents").json()["documents"] == []
