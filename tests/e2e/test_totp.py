"""The authenticator app: enrolment, logins without SMS, replays, recovery codes, policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest

from overdracht import config
from tests.support import Api


def sms_count(phone: str) -> int:
    outbox = Path(config.get("OVERDRACHT_SMS_OUTBOX"))
    return sum(json.loads(line)["to"] == phone for line in outbox.read_text().splitlines())


def enrol(api: Api) -> tuple[pyotp.TOTP, list[str]]:
    setup = api.post("/me/totp")
    assert setup.status_code == 200, setup.text
    assert setup.json()["uri"].startswith("otpauth://totp/Overdracht:")
    app = pyotp.TOTP(setup.json()["secret"])
    password = api.account.password
    wrong = api.post(
        "/me/totp/confirm",
        json={"code": f"{(int(app.now()) + 1) % 10**6:06d}", "password": password},
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_code"
    not_her = api.post("/me/totp/confirm", json={"code": app.now(), "password": "x" * 12})
    assert not_her.status_code == 422 and not_her.json()["error"]["code"] == "wrong_password"
    confirmed = api.post("/me/totp/confirm", json={"code": app.now(), "password": password})
    assert confirmed.status_code == 200, confirmed.text
    return app, confirmed.json()["recovery_codes"]


def log_in_with(harness, account, code_for) -> tuple[Api, dict]:
    """Password, then whatever code_for(challenge) gives; the session, and the last answer."""
    api = harness.anonymous()
    started = api.post("/login", json={"username": account.username, "password": account.password})
    assert started.status_code == 200, started.text
    verified = api.post(
        "/login/verify",
        json={"challenge": started.json()["challenge"], "code": code_for(started.json())},
    )
    if verified.status_code == 200:
        api.headers["Authorization"] = f"Bearer {verified.json()['token']}"
        api.cookies.clear()
    return api, verified


def test_after_enrolment_logins_ask_the_app_and_send_no_sms(harness):
    account = harness.account()
    app, codes = enrol(harness.login(account))
    assert len(codes) == 10 and len(set(codes)) == 10
    sent = sms_count(account.phone)

    seen = {}

    def from_app(started: dict) -> str:
        seen.update(started)
        # the next step's: enrolment spent this one's code
        return app.at(datetime.now(UTC).timestamp() + 30)

    api, verified = log_in_with(harness, account, from_app)
    assert verified.status_code == 200, verified.text
    assert seen["method"] == "totp" and seen["sent_to"] is None
    assert sms_count(account.phone) == sent
    assert api.get("/me").json()["second_factor"] == "totp"
    # she is told by e-mail, in case it was not she who set it up
    assert (
        harness.mail_to(account.email)["Subject"] == "Authenticator-app ingesteld voor Overdracht"
    )
    # no SMS to ask for again
    resend = harness.anonymous().post("/login/resend", json={"challenge": seen["challenge"]})
    assert resend.status_code in (401, 422)


def test_a_code_from_the_app_works_once(harness):
    account = harness.account()
    app, _ = enrol(harness.login(account))
    # enrolment used the current step; the next one's code logs in, and only once
    code = app.at(datetime.now(UTC).timestamp() + 30)
    _, first = log_in_with(harness, account, lambda _: code)
    assert first.status_code == 200, first.text
    _, replay = log_in_with(harness, account, lambda _: code)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "wrong_code"


def test_each_recovery_code_works_once(harness):
    account = harness.account()
    _, codes = enrol(harness.login(account))
    api, used = log_in_with(harness, account, lambda _: codes[0].upper().replace("-", ""))
    assert used.status_code == 200, used.text
    _, again = log_in_with(harness, account, lambda _: codes[0])
    assert again.status_code == 401
    _, other = log_in_with(harness, account, lambda _: codes[1])
    assert other.status_code == 200
    records = harness.audit_until(
        lambda events: len([e for e in events if e["event"] == "provider.logged_in"]) >= 2,
        actor=account.username,
    )
    factors = [e["detail"]["second_factor"] for e in records if e["event"] == "provider.logged_in"]
    assert factors.count("recovery_code") == 2
    assert not any(code in json.dumps(records) for code in codes)


def test_a_helpdesk_reset_takes_the_app_away(harness):
    account = harness.account()
    enrol(harness.login(account))
    beheerder = harness.provider(role="beheerder", region="Landelijk")
    assert beheerder.post(f"/accounts/{account.username}/reset").status_code == 200
    link = harness.anonymous().post(
        "/activation", json={"token": harness.activation_token(account.email)}
    )
    assert link.status_code == 200
    found = beheerder.get("/accounts", params={"q": account.username}).json()["accounts"]
    assert found[0]["second_factor"] == "sms"


@pytest.fixture
def coordinators_need_the_app(harness) -> Iterator[Api]:
    beheerder = harness.provider(role="beheerder", region="Landelijk")
    required = beheerder.post("/second-factor", json={"role": "coordinator", "totp_required": True})
    assert required.status_code == 200, required.text
    try:
        yield beheerder
    finally:
        beheerder.post("/second-factor", json={"role": "coordinator", "totp_required": False})


def test_a_role_that_requires_the_app_can_do_nothing_else_before_it(
    harness, coordinators_need_the_app
):
    policy = coordinators_need_the_app.get("/second-factor").json()["totp_required"]
    assert policy == {
        "zorgverlener": False,
        "coordinator": True,
        "beheerder": False,
        "auditor": False,
    }
    account = harness.account(role="coordinator", region="VSV Tweestaps")
    api = harness.login(account)  # the first time by SMS
    me = api.get("/me").json()
    assert me["must_enrol_totp"] is True
    refused = api.get("/region/accounts")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role"

    enrol(api)
    assert api.get("/me").json()["must_enrol_totp"] is False
    assert api.get("/region/accounts").status_code == 200
    events = harness.audit_until(
        lambda es: any(e["event"] == "second_factor_policy.changed" for e in es),
        event="second_factor_policy.changed",
    )
    assert {"role": "coordinator", "totp_required": True} in [e["detail"] for e in events]


def test_a_beheerder_may_not_lift_the_app_for_her_own_role_but_the_operator_may(harness):
    beheerder = harness.provider(role="beheerder", region="Landelijk")
    for role in ("beheerder", "auditor"):
        lifted = beheerder.post("/second-factor", json={"role": role, "totp_required": False})
        assert lifted.status_code == 403 and lifted.json()["error"]["code"] == "operator_only"

    result = harness.cli("provider", "second-factor", "beheerder", "off")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"role": "beheerder", "totp_required": False}
    changes = harness.audit_until(
        lambda es: any(e["detail"].get("role") == "beheerder" for e in es),
        event="second_factor_policy.changed",
    )
    assert any(e["actor"]["type"] == "operator" for e in changes)
