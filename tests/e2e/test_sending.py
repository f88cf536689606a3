"""auth sending for real: SMS through CM.com's API, e-mail through SMTP, and their failures.

auth runs, for this module, against a local server that plays CM.com and a real SMTP
server (aiosmtpd). When either refuses or is away, the user reads a Dutch message and
nothing half-made is left: no account without its invitation, no reset that only took her
password, no login waiting on a code that never went.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import FakeCm, Smtp, run_in_thread
from tests.support import mobile, restarted, settings


@pytest.fixture(scope="module")
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cm() -> Iterator[FakeCm]:
    server = FakeCm()
    run_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sending(platform, smtp, cm) -> Iterator[None]:
    settings = {
        "OVERDRACHT_MAIL_PROVIDER": "smtp",
        "OVERDRACHT_SMTP_HOST": "127.0.0.1",
        "OVERDRACHT_SMTP_PORT": str(smtp.port),
        "OVERDRACHT_SMTP_STARTTLS": "false",
        "OVERDRACHT_SMTP_TIMEOUT_SECONDS": "3",
        "OVERDRACHT_SMS_PROVIDER": "cm",
        "OVERDRACHT_SMS_CM_URL": cm.url,
        "OVERDRACHT_SMS_CM_PRODUCT_TOKEN": "test-product-token",
        "OVERDRACHT_SMS_TIMEOUT_SECONDS": "2",
        "OVERDRACHT_SMS_RETRIES": "1",
    }
    with restarted(platform, "auth", settings):
        yield


@pytest.fixture(scope="module")
def beheerder(harness, sending, cm):
    account = harness.account(role="beheerder", region="Landelijk")
    return login_through_cm(harness, cm, account)


def login_through_cm(harness, cm, account):
    api = harness.anonymous()
    started = api.post("/login", json={"username": account.username, "password": account.password})
    assert started.status_code == 200, started.text
    code = code_sent_to(cm, account.phone)
    verified = api.post(
        "/login/verify", json={"challenge": started.json()["challenge"], "code": code}
    )
    assert verified.status_code == 200, verified.text
    api.headers["Authorization"] = f"Bearer {verified.json()['token']}"
    api.cookies.clear()
    return api


def code_sent_to(cm, phone: str) -> str:
    number = "0031" + phone[1:]
    bodies = [
        payload["messages"]["msg"][0]["body"]["content"]
        for payload, _ in cm.requests
        if payload["messages"]["msg"][0]["to"] == [{"number": number}]
    ]
    assert bodies, f"no SMS to {phone}"
    return re.search(r"\b(\d{6})\b", bodies[-1]).group(1)


def new_provider(**overrides) -> dict:
    return {
        "full_name": f"Petra Pauwels {uuid.uuid4().hex[:4]}",
        "email": f"petra-{uuid.uuid4().hex[:8]}@vsv-test.nl",
        "phone": mobile(),
        "region": "VSV Verzending",
        "role": "zorgverlener",
        "profession": "verloskundige",
        **overrides,
    }


def test_the_invitation_goes_by_smtp_and_the_code_through_cm(harness, beheerder, smtp, cm):
    data = new_provider()
    invited = beheerder.post("/accounts", json=data)
    assert invited.status_code == 201, invited.text
    [mail] = smtp.mails_to(data["email"])
    token = re.search(r"/activeren\?token=([A-Za-z0-9_-]+)", mail.get_content()).group(1)
    assert harness.anonymous().post("/activation/code", json={"token": token}).status_code == 200
    assert re.fullmatch(r"\d{6}", code_sent_to(cm, data["phone"]))


def test_no_smtp_server_no_account_and_no_reset(harness, beheerder, smtp):
    data = new_provider()
    account = harness.account()
    smtp.stop()
    try:
        refused = beheerder.post("/accounts", json=data)
        reset = beheerder.post(f"/accounts/{account.username}/reset")
    finally:
        smtp.start()
    for response in (refused, reset):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "mail_failed"
        assert "niet worden verstuurd" in response.json()["error"]["message"]
    found = beheerder.get("/accounts", params={"q": data["full_name"]}).json()["accounts"]
    assert found == []
    # her password and her account are as they were
    still = beheerder.get("/accounts", params={"q": account.username}).json()["accounts"]
    assert [a["status"] for a in still] == ["active"]
    assert smtp.mails_to(data["email"]) == [] and smtp.mails_to(account.email) == []


def test_no_sms_no_login_waiting_on_a_code(harness, beheerder, cm):
    account = harness.account()
    api = harness.anonymous()
    cm.mode = "bad_request"
    try:
        refused = api.post(
            "/login", json={"username": account.username, "password": account.password}
        )
    finally:
        cm.mode = "succeed"
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "sms_failed"
    assert "sms" in refused.json()["error"]["message"]
    # and once CM takes messages again she logs in as usual
    assert login_through_cm(harness, cm, account).get("/me").status_code == 200


def test_a_failed_resend_spends_the_challenge(harness, sending, cm, auth_clock):
    account = harness.account()
    api = harness.anonymous()
    started = api.post("/login", json={"username": account.username, "password": account.password})
    challenge = started.json()["challenge"]
    first = code_sent_to(cm, account.phone)
    auth_clock.shift(seconds=61)
    cm.mode = "bad_request"
    try:
        resend = api.post("/login/resend", json={"challenge": challenge})
    finally:
        cm.mode = "succeed"
    assert resend.status_code == 503
    verify = api.post("/login/verify", json={"challenge": challenge, "code": first})
    assert verify.status_code == 401 and verify.json()["error"]["code"] == "code_failed"


def test_a_long_list_is_registered_over_several_calls_each_answered_in_time(
    harness, platform, sending, smtp, cm, tmp_path
):
    """A mail server that takes its time: the CLI's import goes on call after call, each
    within its RPC timeout, until every provider of the list has her invitation."""
    region = f"VSV Lang {uuid.uuid4().hex[:4]}"
    emails = [f"lang-{uuid.uuid4().hex[:8]}@vsv-test.nl" for _ in range(16)]
    lines = [
        f"Lotte {n}ang;{e};{mobile()};verloskundige;;"
        for n, e in zip("BDFHKLMNPRSTVWZJ", emails, strict=True)
    ]
    listing = tmp_path / "lang.csv"
    listing.write_text(
        "\r\n".join(["Naam;E-mailadres;Mobiel nummer;Beroep;Organisatie;AGB-code", *lines])
    )
    smtp.recorder.delay = 0.3  # 16 invitations take about 5 s; each call may take 4
    try:
        with settings(platform, {"OVERDRACHT_RPC_TIMEOUT": "4"}):
            imported = harness.cli("provider", "import", str(listing), "--region", region)
    finally:
        smtp.recorder.delay = 0.0
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert result["remaining"] == 0 and result["failed"] == []
    assert len(result["registered"]) == len(emails)
    assert all(len(smtp.mails_to(e)) == 1 for e in emails)
    # the operator saw it go on, call by call
    assert imported.stderr.count("te gaan") >= 1, imported.stderr
    # and each call is on record with what it left (an auditor logs in through CM here)
    auditor = login_through_cm(harness, cm, harness.account(role="auditor", region="Landelijk"))

    def calls() -> list[dict]:
        found = auditor.get(
            "/audit/events",
            params={"event": "provider_list.registered", "order": "newest", "limit": 50},
        )
        assert found.status_code == 200, found.text
        return [
            e["detail"] for e in found.json()["events"] if e["object"]["id"] == result["list_id"]
        ]

    deadline = time.monotonic() + 15
    while not any(d["remaining"] == 0 for d in calls()) and time.monotonic() < deadline:
        time.sleep(0.3)
    mine = calls()
    assert len(mine) >= 2, mine  # more than one call's worth
    assert sum(d["registered"] for d in mine) == len(emails)
    assert sorted((d["remaining"] for d in mine), reverse=True)[-1] == 0
