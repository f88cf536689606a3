"""The auditor's page: Dutch names, local time, newest first, who and what; filters; a
CSV export Excel opens; and every reading of the log recorded in it."""

from __future__ import annotations

import csv
import io
import re

import requests

from gateway.labels import EVENT_LABELS
from gateway.pages import dutch_time
from overdracht.contracts import EVENT_NAMES
from tests.support import in_weeks, valid_bsn


def auditor_page(harness) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = harness.auditor.headers["Authorization"]
    return session


def test_every_event_has_a_dutch_name():
    assert set(EVENT_LABELS) == set(EVENT_NAMES)


def test_the_page_shows_records_newest_first_in_dutch_with_who_and_what(harness):
    api = harness.provider()
    client = harness.new_client(api)
    harness.upload(api, client["id"], document_type="lab_uitslag", removal_date=in_weeks(4))
    events = harness.audit_until(
        lambda es: any(e["event"] == "document.uploaded" for e in es), client_id=client["id"]
    )
    uploaded = next(e for e in events if e["event"] == "document.uploaded")

    page = auditor_page(harness).get(harness.url + "/audit", params={"client_id": client["id"]})

    assert page.status_code == 200
    rows = re.findall(r'<tr data-event="([a-z_.]+)">(.*?)</tr>', page.text, re.S)
    assert [name for name, _ in rows][:2] == ["document.uploaded", "client.created"]
    row = rows[0][1]
    assert "Document geplaatst" in row and "Labuitslag" in row
    assert f"{api.account.full_name} (verloskundige)" in row
    assert dutch_time(uploaded["occurred_at"]) in row  # Europe/Amsterdam, dd-mm-jjjj hh:mm
    assert "Cliënt toegevoegd" in rows[1][1]


def test_filters_by_date_actor_and_event_and_reading_is_recorded(harness):
    api = harness.provider()
    client = harness.new_client(api)
    harness.audit_until(lambda es: len(es) >= 1, client_id=client["id"])
    auditor = auditor_page(harness)
    params = {"actor": api.account.username, "event": "client.created"}

    page = auditor.get(harness.url + "/audit", params=params).text
    assert len(re.findall(r'<tr data-event="client.created">', page)) == 1
    none = auditor.get(
        harness.url + "/audit", params={**params, "van": "2001-01-01", "tot": "2001-12-31"}
    ).text
    assert "Geen gebeurtenissen." in none
    bad = auditor.get(harness.url + "/audit", params={"van": "gisteren"})
    assert bad.status_code == 200 and "Gebruik een datum" in bad.text

    readings = harness.audit(actor=harness.auditor.account.username, event="audit.read")
    asked = [r["detail"]["filters"] for r in readings]
    assert {"actor": api.account.username, "event": "client.created", "order": "newest"} in asked
    assert all(r["actor"]["role"] == "auditor" for r in readings)


def test_the_csv_export_opens_in_excel_and_is_recorded(harness):
    api = harness.provider()
    client = harness.new_client(api, maiden_name="Exportvrouw")
    harness.upload(api, client["id"], removal_date=in_weeks(4))
    harness.audit_until(
        lambda es: any(e["event"] == "document.uploaded" for e in es), client_id=client["id"]
    )

    export = auditor_page(harness).get(
        harness.url + "/audit/export.csv", params={"client_id": client["id"]}
    )

    assert export.status_code == 200
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert export.headers["Content-Disposition"].startswith('attachment; filename="auditlog-')
    assert export.content.startswith("\ufeff".encode())  # the BOM
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["Volgnummer", "Tijdstip", "Gebeurtenis", "Code"]
    assert [r[3] for r in rows[1:]] == ["document.uploaded", "client.created"]
    assert rows[1][2] == "Document geplaatst" and rows[1][8] == "Zwangerschapskaart"
    assert "Exportvrouw" not in export.text  # ids, never a name of hers

    exports = harness.audit(actor=harness.auditor.account.username, event="audit.exported")
    assert any(
        e["detail"]["filters"].get("client_id") == client["id"] and e["detail"]["records"] == 2
        for e in exports
    )


def test_only_auditors_read_or_export_and_a_refusal_is_recorded(harness):
    api = harness.provider()
    assert api.get("/audit/events").status_code == 403
    denied = harness.audit_until(
        lambda es: any(e["detail"].get("action") == "audit.query" for e in es),
        actor=api.account.username,
        event="access.denied",
    )
    assert denied and denied[0]["outcome"] == "denied"


def find(harness, auditor: requests.Session, **typed) -> requests.Response:
    page = auditor.get(harness.url + "/audit")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return auditor.post(harness.url + "/audit/client", data={"csrf": token, **typed})


def test_the_auditor_finds_a_client_by_bsn_or_phone_also_after_she_is_gone(harness):
    api = harness.provider()
    client = harness.new_client(api, maiden_name="Weggevrouw")
    harness.upload(api, client["id"], removal_date=in_weeks(1))
    created = harness.audit_until(
        lambda es: any(e["event"] == "client.created" for e in es), client_id=client["id"]
    )
    record = next(e for e in created if e["event"] == "client.created")
    assert "audit_lookup" not in record["detail"]  # the sealed identifiers are not kept
    assert client["bsn"] not in str(created) and client["phone"] not in str(created)

    swept = harness.cli("retention", "sweep", "--as-of", in_weeks(1))
    assert swept.returncode == 0, swept.stderr
    gone = api.post(
        "/clients/search", json={"birth_date": client["birth_date"], "bsn": client["bsn"]}
    )
    assert gone.json() == {"results": []}

    auditor = auditor_page(harness)
    for typed in ({"bsn": client["bsn"]}, {"phone": client["phone"]}):
        overview = find(harness, auditor, birth_date=client["birth_date"], **typed)
        assert overview.status_code == 200
        assert overview.url.endswith(f"/audit/clienten/{client['id']}")
        assert client["bsn"] not in overview.url and "Weggevrouw" not in overview.text
        names = re.findall(r'<tr data-event="([a-z_.]+)">', overview.text)
        assert {"client.created", "document.uploaded", "document.expired", "client.deleted"} <= set(
            names
        )
        assert f"{api.account.full_name} (verloskundige)" in overview.text
        assert "Afdrukken" in overview.text

    wrong = find(harness, auditor, birth_date=client["birth_date"], bsn=valid_bsn())
    assert "Geen cliënt gevonden" in wrong.text and wrong.url.endswith("/audit")
    lookups = [
        e
        for e in harness.audit(actor=harness.auditor.account.username, event="audit.read")
        if "lookup" in e["detail"]
    ]
    assert any(e["detail"]["client_ids"] == [client["id"]] for e in lookups)
    assert any(e["outcome"] == "not_found" for e in lookups)
    assert all(client["bsn"] not in str(e) for e in lookups)


def test_the_gateways_own_refusals_are_recorded_for_whoever_was_refused(harness):
    api = harness.provider()
    page = requests.Session()
    page.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))

    assert page.get(harness.url + "/audit").status_code == 403  # not her role
    assert page.post(harness.url + "/clienten/zoeken", data={}).status_code == 400  # no CSRF

    refusals = harness.audit_until(
        lambda es: len(es) >= 2, actor=api.account.username, event="access.denied"
    )
    by_gateway = {(e["detail"]["action"], e["detail"]["reason"]) for e in refusals}
    assert {("pages.audit", "role"), ("pages.search", "csrf")} <= by_gateway
    assert all(e["detail"].get("by") == "gateway" for e in refusals)
    assert all(e["actor"]["role"] == "zorgverlener" for e in refusals)
