"""Bad input is refused with the API's error shape and changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.support import in_weeks, pdf, valid_bsn

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
        ({"bsn": "111222333"}, "missing_birth_date"),
        ({"birth_date": "1990-02-30", "bsn": "111222333"}, "invalid_birth_date"),
        ({"birth_date": "1990-01-01"}, "missing_bsn_or_phone"),
    ],
)
def test_bad_searches_are_refused(harness, provider, criteria, code):
    error = error_of(provider.post("/clients/search", json=criteria), 422)
    assert error["code"] == code


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
        ({"birth_date": ""}, "missing_birth_date"),
        ({"maiden_name": ""}, "missing_maiden_name"),
        ({"maiden_name": "Jansen <script>"}, "invalid_maiden_name"),
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
