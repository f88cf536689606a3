"""A provider's own clients: moving a removal date, Mijn cliënten, and the new-document
notice to the others who care for her."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import time
from email.message import EmailMessage
from pathlib import Path

import requests

from overdracht import config
from tests.support import in_weeks, restarted


def page_session(harness, api) -> requests.Session:
    """A browser-like session (her token as the page cookie) for the same login as api."""
    session = requests.Session()
    session.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))
    return session


def csrf(page: requests.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_any_provider_with_a_relationship_moves_a_removal_date_and_it_is_audited(harness):
    first, second = harness.provider(), harness.provider()
    client = harness.new_client(first)
    placed = harness.upload(first, client["id"], removal_date=in_weeks(3)).json()
    harness.relate(second, client)

    moved = second.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(5)})

    assert moved.status_code == 200, moved.text
    assert moved.json()["removal_date"] == in_weeks(5)
    listed = first.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["removal_date"] for d in listed] == [in_weeks(5)]
    events = harness.audit_until(
        lambda es: any(e["event"] == "document.removal_date_moved" for e in es),
        client_id=client["id"],
    )
    (record,) = [e for e in events if e["event"] == "document.removal_date_moved"]
    assert record["actor"]["username"] == second.account.username
    assert record["object"]["id"] == placed["id"]
    assert record["detail"] == {"from": in_weeks(3), "to": in_weeks(5)}


def test_a_removal_date_past_the_cap_or_in_the_past_changes_nothing(harness):
    api = harness.provider()
    client = harness.new_client(api, due_date=in_weeks(10))  # cap: due date + 6 weeks
    placed = harness.upload(api, client["id"], removal_date=in_weeks(3)).json()

    for wrong, code in (
        (in_weeks(17), "removal_date_too_late"),
        ("2020-01-01", "removal_date_not_future"),
        ("morgen", "invalid_removal_date"),
        (None, "missing_removal_date"),
    ):
        answer = api.patch(f"/documents/{placed['id']}", json={"removal_date": wrong})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == code
    assert api.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(16)}).ok
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["removal_date"] for d in listed] == [in_weeks(16)]
    moves = [
        e
        for e in harness.audit(client_id=client["id"])
        if e["event"] == "document.removal_date_moved"
    ]
    assert [m["detail"]["to"] for m in moves] == [in_weeks(16)]


def test_only_the_uploader_moves_a_removal_date_sooner(harness):
    first, second = harness.provider(), harness.provider()
    client = harness.new_client(first)
    placed = harness.upload(first, client["id"], removal_date=in_weeks(5)).json()
    harness.relate(second, client)

    sooner = second.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(2)})

    assert sooner.status_code == 403 and sooner.json()["error"]["code"] == "not_uploader"
    listed = first.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["removal_date"] for d in listed] == [in_weeks(5)]
    assert first.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(2)}).ok


def test_a_moved_removal_date_keeps_the_document_from_the_sweep(harness):
    api = harness.provider()
    client = harness.new_client(api)
    placed = harness.upload(api, client["id"], removal_date=in_weeks(1)).json()
    assert api.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(3)}).ok

    swept = harness.cli("retention", "sweep", "--as-of", in_weeks(1))

    assert swept.returncode == 0, swept.stderr
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["id"] for d in listed] == [placed["id"]]
    assert api.get(f"/documents/{placed['id']}/content").status_code == 200


def test_without_a_relationship_a_removal_date_stays_and_the_refusal_is_audited(harness):
    owner, stranger = harness.provider(), harness.provider()
    client = harness.new_client(owner)
    placed = harness.upload(owner, client["id"], removal_date=in_weeks(3)).json()

    answer = stranger.patch(f"/documents/{placed['id']}", json={"removal_date": in_weeks(4)})

    assert answer.status_code == 403
    listed = owner.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["removal_date"] for d in listed] == [in_weeks(3)]
    events = harness.audit_until(
        lambda es: any(e["event"] == "access.denied" for e in es), client_id=client["id"]
    )
    denied = [e for e in events if e["event"] == "access.denied"]
    assert denied[0]["actor"]["username"] == stranger.account.username
    assert denied[0]["detail"]["action"] == "document.removal_date_moved"


def test_the_page_shows_a_wrong_date_beside_that_document_and_keeps_it(harness):
    api = harness.provider()
    client = harness.new_client(api)
    placed = harness.upload(api, client["id"], removal_date=in_weeks(3)).json()
    browser = page_session(harness, api)
    page = browser.get(harness.url + f"/clienten/{client['id']}")
    url = harness.url + f"/documenten/{placed['id']}/verwijderdatum"
    form = {"csrf": csrf(page), "client_id": client["id"]}

    wrong = browser.post(url, data={**form, "removal_date": in_weeks(60)}, allow_redirects=False)
    assert wrong.status_code == 302  # Post/Redirect/Get, also after an error
    shown = browser.get(harness.url + wrong.headers["Location"]).text
    date_input = re.search(rf'<input id="removal-{placed["id"]}"[^>]*>', shown).group(0)
    assert f'value="{in_weeks(60)}"' in date_input and 'aria-invalid="true"' in date_input
    assert f'id="removal-error-{placed["id"]}" role="alert">De verwijderdatum mag niet na' in shown

    right = browser.post(url, data={**form, "removal_date": in_weeks(4)})
    day, month, year = in_weeks(4)[8:], in_weeks(4)[5:7], in_weeks(4)[:4]
    assert f"is nu {day}-{month}-{year}" in right.text
    assert 'aria-invalid="true"' not in right.text


def mails_to(address: str) -> list[EmailMessage]:
    outbox = Path(config.get("OVERDRACHT_MAIL_OUTBOX"))
    if not outbox.exists():
        return []
    box = mailbox.Maildir(outbox, factory=None, create=False)
    return [
        email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
        for m in box
        if m["To"] == address
    ]


def wait_for(check, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_mijn_clienten_marks_what_others_placed_until_she_opens_it(harness):
    first, second = harness.provider(), harness.provider()
    client = harness.new_client(first, maiden_name="Bakker", due_date=in_weeks(8))
    other = harness.new_client(second, maiden_name="Smit")
    harness.relate(second, client)

    assert harness.upload(first, client["id"], removal_date=in_weeks(4)).status_code == 201

    def mine(api) -> dict[str, dict]:
        answer = api.get("/clients")
        assert answer.status_code == 200, answer.text
        return {c["id"]: c for c in answer.json()["clients"]}

    assert wait_for(lambda: mine(second)[client["id"]]["new_since"] is not None)
    shown = mine(second)
    assert list(shown) == [client["id"], other["id"]]  # what is new comes first
    assert shown[client["id"]]["name"] == "Bakker"
    assert shown[client["id"]]["due_date"] == in_weeks(8)
    assert shown[other["id"]]["new_since"] is None
    assert mine(first)[client["id"]]["new_since"] is None  # her own document is not news

    page = page_session(harness, second).get(harness.url + "/overzicht").text
    row = re.search(r'<tr class="new">.*?</tr>', page, re.S).group(0)
    assert "Bakker" in row and "Nieuw sinds" in row and f"/clienten/{client['id']}" in row

    # opening her needs no search, and then nothing is new any more
    opened = page_session(harness, second).get(harness.url + f"/clienten/{client['id']}")
    assert opened.status_code == 200 and "Bakker" in opened.text
    assert mine(second)[client["id"]]["new_since"] is None

    events = harness.audit_until(
        lambda es: any(e["event"] == "document.listed" for e in es), actor=second.account.username
    )
    kinds = [e["event"] for e in events]
    assert "client.listed" in kinds and "document.listed" in kinds
    listed = [e for e in events if e["event"] == "client.listed"][-1]
    assert set(listed["detail"]["client_ids"]) == {client["id"], other["id"]}
    searches = [e for e in events if e["event"] == "client.searched"]
    assert len(searches) == 1  # the one that declared the relationship, none since


def test_opening_her_from_mijn_clienten_does_not_count_against_the_search_limit(platform, harness):
    api = harness.provider()
    with restarted(platform, "clients", {"OVERDRACHT_SEARCH_LIMIT_PER_HOUR": "3"}):
        client = harness.new_client(api)  # one lookup of three
        for _ in range(5):
            assert api.get("/clients").status_code == 200
            assert api.get(f"/clients/{client['id']}/documents").status_code == 200
        criteria = {"birth_date": client["birth_date"], "bsn": client["bsn"]}
        assert api.post("/clients/search", json=criteria).status_code == 200
        assert api.post("/clients/search", json=criteria).status_code == 200
        assert api.post("/clients/search", json=criteria).status_code == 429  # the limit holds


def test_the_others_get_one_notice_an_hour_without_client_data(harness):
    first, second, third = harness.provider(), harness.provider(), harness.provider()
    client = harness.new_client(first, maiden_name="Mulder")
    harness.relate(second, client)
    harness.relate(third, client)

    assert harness.upload(first, client["id"]).status_code == 201
    for other in (second, third):
        assert wait_for(lambda other=other: mails_to(other.account.email)), "no notice"
    # she opens it (nothing new), then a second document comes within the hour: marked
    # new again, which shows its event was handled, but no second mail
    assert second.get(f"/clients/{client['id']}/documents").status_code == 200
    assert not mine_new(second, client["id"])
    assert harness.upload(first, client["id"]).status_code == 201
    assert wait_for(lambda: mine_new(second, client["id"]))

    for other in (second, third):
        (notice,) = mails_to(other.account.email)
        text = notice.get_content()
        assert notice["Subject"] == "Nieuw document op Overdracht"
        assert "/overzicht" in text and other.account.full_name in text
        for secret in ("Mulder", client["bsn"], client["phone"], client["birth_date"]):
            assert secret not in text and secret not in notice["Subject"]
        assert client["id"] not in text
    assert mails_to(first.account.email) == []  # who placed it is not told


def mine_new(api, client_id: str) -> bool:
    clients = {c["id"]: c for c in api.get("/clients").json()["clients"]}
    return clients[client_id]["new_since"] is not None
