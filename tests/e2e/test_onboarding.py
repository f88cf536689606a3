"""A region goes live: the coördinator's list, the beheerder's desk, activation from e-mail."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from tests.support import Account, mobile

HEADER = "Naam;E-mailadres;Mobiel nummer;Beroep;Organisatie;AGB-code"
GOOD_PASSWORD = "kraamzorg vlinder oktober polder"


def csv_of(*rows: str, header: str = HEADER, bom: bool = True) -> bytes:
    """A list the way Excel saves it: CRLF lines, with or without its BOM."""
    return (("\ufeff" if bom else "") + "\r\n".join([header, *rows]) + "\r\n").encode()


def row(name: str, email: str | None = None, phone: str | None = None, profession="verloskundige"):
    email = email or f"{uuid.uuid4().hex[:10]}@vsv-test.nl"
    return f"{name};{email};{phone or mobile()};{profession};Praktijk De Linde;"


def submit(api, content: bytes, filename: str = "vsv.csv"):
    return api.post("/provider-lists", files={"file": (filename, content, "text/csv")})


@pytest.fixture(scope="module")
def region() -> str:
    return f"VSV Test {uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def coordinator(harness, region):
    return harness.provider(role="coordinator", region=region)


@pytest.fixture(scope="module")
def beheerder(harness):
    return harness.provider(role="beheerder", region="Landelijk")


def statuses(coordinator) -> dict[str, str]:
    response = coordinator.get("/region/accounts")
    assert response.status_code == 200, response.text
    return {a["full_name"]: a["status"] for a in response.json()["accounts"]}


def test_each_bad_row_is_reported_by_its_excel_line_and_nothing_of_it_is_kept(harness, coordinator):
    taken = f"{uuid.uuid4().hex[:8]}@vsv-test.nl"
    content = csv_of(
        row("Anna de Vries"),  # 2
        row("Bea Bakker", email="geen-adres"),  # 3
        ";;;;;",  # 4: Excel's empty row, skipped but counted
        row("Carla Claes", phone="0201234567"),  # 5: a landline
        row("Dirk Dekker", profession="bakker"),  # 6
        row("Eva Evers", email=taken),  # 7
        row("Fleur Fransen", email=taken.upper()),  # 8: the same address again
    )
    response = submit(coordinator, content)

    assert response.status_code == 201, response.text
    result = response.json()
    assert result["accepted"] == 2
    assert [e["line"] for e in result["errors"]] == [3, 5, 6, 8]
    messages = {e["line"]: e["message"] for e in result["errors"]}
    assert "e-mailadres" in messages[3].lower()
    assert "mobiel" in messages[5].lower()
    assert "beroep" in messages[6].lower()
    assert "regel 7" in messages[8]
    seen = statuses(coordinator)
    assert seen == {"Anna de Vries": "submitted", "Eva Evers": "submitted"}
    # nothing of a refused row is kept: not in the region's view, not in the beheerder's
    lists = harness.login(harness.account(role="beheerder", region="Landelijk"))
    listed = lists.get(f"/provider-lists/{result['list_id']}").json()
    assert [r["line"] for r in listed["rows"]] == [2, 7]
    assert "Bea Bakker" not in json.dumps(listed)


def test_commas_without_a_bom_are_read_and_a_missing_column_or_encoding_is_named(coordinator):
    content = csv_of(
        "Gerda Graaf,gerda-" + uuid.uuid4().hex[:6] + "@vsv-test.nl,06 1234 5678,Gynaecoloog",
        header="Naam,E-mail,Mobiel,Beroep",
        bom=False,
    )
    response = submit(coordinator, content)
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 1

    missing = submit(coordinator, csv_of(row("Hanna Hof"), header="Naam;E-mail;Mobiel"))
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "invalid_provider_list"
    assert "beroep" in missing.json()["error"]["message"]

    latin1 = submit(
        coordinator, HEADER.encode() + b"\r\nInge Ha\xebck;i@vsv-test.nl;0612345678;arts\r\n"
    )
    assert latin1.status_code == 422
    assert "UTF-8" in latin1.json()["error"]["message"]


def test_a_coordinator_sees_only_her_own_region(harness, coordinator):
    name = f"Jet Jansen {uuid.uuid4().hex[:4]}"
    assert submit(coordinator, csv_of(row(name))).status_code == 201
    other = harness.provider(role="coordinator", region=f"VSV Elders {uuid.uuid4().hex[:4]}")
    assert name not in statuses(other)
    assert statuses(coordinator)[name] == "submitted"


def test_registered_providers_activate_from_the_email_and_log_in(harness, coordinator, beheerder):
    phone = mobile()
    email = f"kim-{uuid.uuid4().hex[:8]}@vsv-test.nl"
    name = f"Kim van Kempen {uuid.uuid4().hex[:4]}"
    submitted = submit(coordinator, csv_of(row(name, email=email, phone=phone))).json()
    waiting = beheerder.get("/provider-lists", params={"status": "submitted"}).json()["lists"]
    assert submitted["list_id"] in [w["id"] for w in waiting]

    registered = beheerder.post(f"/provider-lists/{submitted['list_id']}/register")
    assert registered.status_code == 200, registered.text
    assert registered.json()["failed"] == []
    [new] = registered.json()["registered"]
    assert statuses(coordinator)[name] == "invited"

    mail = harness.mail_to(email)
    text = mail.get_content()
    assert mail["Subject"] == "Uw account voor Overdracht"
    assert new["username"] in text and f"06-****{phone[-4:]}" in text
    token = harness.activation_token(email)
    anonymous = harness.anonymous()
    link = anonymous.post("/activation", json={"token": token}).json()
    assert link["username"] == new["username"]
    assert link["sent_to"] == f"06-****{phone[-4:]}"

    # no code asked for yet: nothing to confirm
    complete = {"token": token, "code": "000000", "password": GOOD_PASSWORD}
    early = anonymous.post("/activation/complete", json=complete)
    assert early.status_code == 422 and early.json()["error"]["code"] == "code_failed"
    assert anonymous.post("/activation/code", json={"token": token}).status_code == 200
    code = harness.sms_code(phone)
    wrong = anonymous.post("/activation/complete", json={**complete, "code": wrong_code(code)})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_code"
    assert "nog 2 keer" in wrong.json()["error"]["message"]
    weak = anonymous.post(
        "/activation/complete", json={**complete, "code": code, "password": "kimvankempen1"}
    )
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    done = anonymous.post("/activation/complete", json={**complete, "code": code})
    assert done.status_code == 200, done.text

    account = Account(new["username"], GOOD_PASSWORD, phone, "zorgverlener", "", name, email)
    me = harness.login(account).get("/me").json()
    assert (me["username"], me["role"], me["profession"]) == (
        new["username"],
        "zorgverlener",
        "verloskundige",
    )
    used = anonymous.post("/activation", json={"token": token})
    assert used.status_code == 410 and used.json()["error"]["code"] == "activation_used"
    assert statuses(coordinator)[name] == "active"

    records = harness.audit_until(
        lambda events: "provider.activated" in {e["event"] for e in events},
        actor=new["username"],
    )
    assert "provider.activated" in {e["event"] for e in records}
    everything = json.dumps(harness.audit())
    for secret in (token, GOOD_PASSWORD, code):
        assert secret not in everything
    for log in Path(harness.platform.log_dir).glob("*"):
        text = log.read_text(errors="replace")
        assert token not in text and GOOD_PASSWORD not in text, log.name


def test_a_rejected_list_keeps_nothing_of_the_people_it_named(harness, coordinator, beheerder):
    kept = f"{uuid.uuid4().hex[:8]}@vsv-test.nl"
    name = f"Roos Rademaker {uuid.uuid4().hex[:4]}"
    listed = submit(coordinator, csv_of(row(name, email=kept), row("Fenna Fokkema"))).json()
    list_id = listed["list_id"]
    assert coordinator.post(f"/provider-lists/{list_id}/reject").status_code == 403

    rejected = beheerder.post(f"/provider-lists/{list_id}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json() == {"list_id": list_id, "status": "rejected", "discarded": 2}
    shown = beheerder.get(f"/provider-lists/{list_id}").json()
    assert shown["status"] == "rejected" and shown["rows"] == []
    assert name not in statuses(coordinator)
    again = beheerder.post(f"/provider-lists/{list_id}/reject")
    assert again.status_code == 409 and again.json()["error"]["code"] == "list_closed"
    registering = beheerder.post(f"/provider-lists/{list_id}/register")
    assert registering.status_code == 409, registering.text
    assert beheerder.get(f"/provider-lists/{list_id}").json()["status"] == "rejected"
    # her address waits in no list any more: a corrected list may name her again
    assert submit(coordinator, csv_of(row(name, email=kept))).status_code == 201

    records = harness.audit_until(
        lambda es: any(e["object"]["id"] == list_id for e in es),
        event="provider_list.rejected",
        actor=beheerder.account.username,
    )
    assert [e["detail"]["discarded"] for e in records if e["object"]["id"] == list_id] == [2]
    assert kept not in json.dumps(records) and name not in json.dumps(records)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def invite(beheerder, **overrides) -> dict:
    data = {
        "full_name": f"Lotte Lammers {uuid.uuid4().hex[:4]}",
        "email": f"lotte-{uuid.uuid4().hex[:8]}@vsv-test.nl",
        "phone": mobile(),
        "region": "VSV Losse Aanmelding",
        "role": "zorgverlener",
        "profession": "kraamverzorgende",
        **overrides,
    }
    response = beheerder.post("/accounts", json=data)
    assert response.status_code == 201, response.text
    return {**data, **response.json()}


def test_an_expired_link_says_so_in_dutch(harness, beheerder, auth_clock):
    invited = invite(beheerder)
    token = harness.activation_token(invited["email"])
    auth_clock.shift(hours=72, minutes=1)
    response = harness.anonymous().post("/activation", json={"token": token})
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "activation_expired"
    assert "verlopen" in response.json()["error"]["message"]


def test_a_reset_ends_her_sessions_and_password_and_replaces_the_link(harness, beheerder):
    account = harness.account()
    session = harness.login(account)
    reset = beheerder.post(f"/accounts/{account.username}/reset")
    assert reset.status_code == 200, reset.text
    assert reset.json()["sessions_ended"] == 1

    assert session.get("/me").status_code == 401
    refused = harness.anonymous().post(
        "/login", json={"username": account.username, "password": account.password}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "login_failed"
    first = harness.activation_token(account.email)
    assert harness.mail_to(account.email)["Subject"] == "Nieuwe activeringslink voor Overdracht"
    assert beheerder.post(f"/accounts/{account.username}/reset").status_code == 200
    second = harness.activation_token(account.email)
    replaced = harness.anonymous().post("/activation", json={"token": first})
    assert replaced.json()["error"]["code"] == "activation_superseded"
    assert harness.anonymous().post("/activation", json={"token": second}).status_code == 200


def test_deactivation_ends_sessions_and_logins_look_like_any_refusal(harness, beheerder):
    account = harness.account()
    session = harness.login(account)
    response = beheerder.post(f"/accounts/{account.username}/deactivate")
    assert response.status_code == 200, response.text
    assert session.get("/me").status_code == 401
    refused = harness.anonymous().post(
        "/login", json={"username": account.username, "password": account.password}
    )
    unknown = harness.anonymous().post(
        "/login", json={"username": f"niemand-{uuid.uuid4().hex[:6]}", "password": "x" * 12}
    )
    assert (refused.status_code, refused.json()) == (unknown.status_code, unknown.json())
    found = beheerder.get("/accounts", params={"q": account.username}).json()["accounts"]
    assert [a["status"] for a in found] == ["deactivated"]


def test_a_beheerder_registers_no_auditor_and_cannot_act_on_herself(harness, beheerder):
    data = {
        "full_name": "Mirjam Meijer",
        "email": "mirjam@vsv-test.nl",
        "phone": mobile(),
        "region": "Landelijk",
        "role": "auditor",
    }
    assert beheerder.post("/accounts", json=data).status_code == 403
    me = beheerder.get("/me").json()["username"]
    assert beheerder.post(f"/accounts/{me}/deactivate").status_code == 403


def test_the_cli_imports_lists_invites_resets_and_deactivates(harness, tmp_path):
    region = f"VSV CLI {uuid.uuid4().hex[:6]}"
    email = f"nina-{uuid.uuid4().hex[:8]}@vsv-test.nl"
    listing = tmp_path / "vsv.csv"
    listing.write_bytes(csv_of(row("Nina Noordam", email=email), row("Onjuist", email="x")))
    imported = harness.cli("provider", "import", str(listing), "--region", region)
    assert imported.returncode == 1, imported.stderr  # one line was refused
    assert "regel 3:" in imported.stderr
    [new] = json.loads(imported.stdout)["registered"]
    assert harness.mail_to(email)

    found = harness.cli("provider", "list", "--region", region)
    assert found.returncode == 0, found.stderr
    assert [(a["username"], a["status"]) for a in json.loads(found.stdout)["accounts"]] == [
        (new["username"], "invited")
    ]
    invited = harness.cli(
        "provider", "invite", "--full-name", "Olga Ouwens", "--email", "olga@vsv-test.nl",
        "--phone", mobile(), "--region", region, "--role", "coordinator",
    )  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    username = json.loads(invited.stdout)["username"]
    assert username.startswith("o.ouwens")
    for action in ("reset", "deactivate"):
        done = harness.cli("provider", action, username)
        assert done.returncode == 0, done.stderr
    after = harness.cli("provider", "list", "--region", region, "--status", "deactivated")
    assert [a["username"] for a in json.loads(after.stdout)["accounts"]] == [username]
    events = harness.audit_until(
        lambda events: (
            {"provider.password_reset", "provider.deactivated"} <= {e["event"] for e in events}
        )
    )
    mine = [e for e in events if (e.get("object") or {}).get("username") == username]
    assert {"provider.registered", "provider.invited", "provider.deactivated"} <= {
        e["event"] for e in mine
    }
    assert {e["actor"]["type"] for e in mine} == {"operator"}


def test_codes_can_be_guessed_three_times_each_and_a_link_sends_five(
    harness, beheerder, auth_clock
):
    invited = invite(beheerder)
    token = harness.activation_token(invited["email"])
    anonymous = harness.anonymous()
    complete = {"token": token, "password": GOOD_PASSWORD}
    for round_ in range(5):
        if round_:
            too_soon = anonymous.post("/activation/code", json={"token": token})
            assert too_soon.status_code == 429 and "Retry-After" in too_soon.headers
            auth_clock.shift(seconds=61)
        assert anonymous.post("/activation/code", json={"token": token}).status_code == 200
        code = harness.sms_code(invited["phone"])
        answers = [
            anonymous.post("/activation/complete", json={**complete, "code": wrong_code(code)})
            for _ in range(3)
        ]
        assert [a.json()["error"]["code"] for a in answers] == [
            "wrong_code",
            "wrong_code",
            "code_failed",
        ]
        # spent: the right code no longer works either
        late = anonymous.post("/activation/complete", json={**complete, "code": code})
        assert late.json()["error"]["code"] == "code_failed"
    auth_clock.shift(seconds=61)
    sixth = anonymous.post("/activation/code", json={"token": token})
    assert sixth.status_code == 410 and sixth.json()["error"]["code"] == "too_many_codes"


def test_the_link_is_answered_at_once_as_from_webmail_without_any_cookie(harness, beheerder):
    """From another site the session cookie (SameSite=Strict) is not sent: no redirect
    may depend on it."""
    invited = invite(beheerder)
    token = harness.activation_token(invited["email"])
    page = requests.get(f"{harness.url}/activeren", params={"token": token}, allow_redirects=False)
    assert page.status_code == 200
    assert invited["username"] in page.text
    assert f'name="token" value="{token}"' in page.text


def test_a_beheerder_leaves_auditors_and_beheerders_to_the_operator(harness, beheerder):
    for role in ("auditor", "beheerder"):
        other = harness.account(role=role, region="Landelijk")
        for action in ("unlock", "reset", "deactivate"):
            refused = beheerder.post(f"/accounts/{other.username}/{action}")
            assert refused.status_code == 403, (role, action, refused.text)
            assert refused.json()["error"]["code"] == "operator_only"


def test_a_login_begun_before_a_reset_cannot_be_finished_after_it(harness, beheerder):
    """Whoever had her old password and her phone cannot finish a login begun with it."""
    account = harness.account()
    api = harness.anonymous()
    started = api.post("/login", json={"username": account.username, "password": account.password})
    old_code = harness.sms_code(account.phone)
    assert beheerder.post(f"/accounts/{account.username}/reset").status_code == 200
    token = harness.activation_token(account.email)
    anonymous = harness.anonymous()
    assert anonymous.post("/activation/code", json={"token": token}).status_code == 200
    new_code = harness.sms_code(account.phone)
    done = anonymous.post(
        "/activation/complete", json={"token": token, "code": new_code, "password": GOOD_PASSWORD}
    )
    assert done.status_code == 200, done.text

    late = api.post(
        "/login/verify", json={"challenge": started.json()["challenge"], "code": old_code}
    )
    assert late.status_code == 401 and late.json()["error"]["code"] == "code_failed"
