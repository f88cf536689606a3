"""The authenticator app: enrolment, logins without SMS, replays, recovery codes, policy."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from overdracht import config
from services.auth.sealing import SETTING, Sealer
from tests.support import Api, database, enrol, log_in_with, restarted, settings


def sms_count(phone: str) -> int:
    outbox = Path(config.get("OVERDRACHT_SMS_OUTBOX"))
    return sum(json.loads(line)["to"] == phone for line in outbox.read_text().splitlines())


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


# --- the secrets at rest (services/auth/sealing.py) ------------------------------------------


def stored(username: str) -> sa.Row:
    with database("auth") as session:
        return session.execute(
            sa.text(
                "SELECT id, totp_secret, totp_pending, failed_logins FROM providers"
                " WHERE username = :username"
            ),
            {"username": username},
        ).one()


def next_code(app: pyotp.TOTP) -> str:
    """The next step's code (enrolment and earlier logins spent this one's)."""
    return app.at(datetime.now(UTC).timestamp() + 30)


def code_after(app: pyotp.TOTP, used: int) -> str:
    """The code of the step after the one last used, once it is within the window."""
    while app.timecode(datetime.now(UTC)) < used:
        time.sleep(0.5)
    return app.generate_otp(used + 1)


def test_auths_database_holds_no_secret_to_make_codes_with(harness):
    account = harness.account()
    api = harness.login(account)
    offered = api.post("/me/totp").json()["secret"]
    row = stored(account.username)
    assert row.totp_secret is None and row.totp_pending is not None
    assert offered not in row.totp_pending
    app, _ = enrol(api)
    assert app.secret == offered  # the same secret until she confirms it
    row = stored(account.username)
    assert row.totp_pending is None
    # neither the secret nor its bytes: sealed, not encoded
    assert app.secret not in row.totp_secret
    assert base64.b32decode(app.secret) not in base64.b64decode(row.totp_secret)


def test_a_sealed_secret_copied_into_another_account_lets_nobody_in(harness):
    """An insider who can write auth's database puts her own app's secret in a colleague's
    row: it does not open there, the login is refused and nothing counts against her."""
    insider = harness.account()
    app, _ = enrol(harness.login(insider))
    colleague = harness.account()
    enrol(harness.login(colleague))
    before = stored(colleague.username)

    def put(sealed: str) -> None:
        with database("auth") as session:
            session.execute(
                sa.text("UPDATE providers SET totp_secret = :sealed WHERE username = :username"),
                {"sealed": sealed, "username": colleague.username},
            )

    put(stored(insider.username).totp_secret)
    try:
        _, refused = log_in_with(harness, colleague, lambda _: next_code(app))
    finally:
        put(before.totp_secret)  # hers again, for the tests that seal every secret anew
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "totp_unreadable"
    assert stored(colleague.username).failed_logins == before.failed_logins
    assert (
        "the sealed totp_secret does not open"
        in (harness.platform.log_dir / "auth.log").read_text()
    )


def test_a_new_sealing_key_takes_over_and_the_old_one_can_go(harness, platform):
    account = harness.account()
    app, _ = enrol(harness.login(account))
    original = platform.env[SETTING]
    made = harness.cli("keys", "auth-new")
    assert made.returncode == 0, made.stderr
    name, rotated = made.stdout.strip().split("=", 1)
    assert name == SETTING and len(json.loads(rotated)["key"]) == 2
    only_new = json.loads(rotated)
    only_new["key"] = [k for k in only_new["key"] if k["keyId"] == only_new["primaryKeyId"]]
    # back to the platform's own key afterwards: it is the primary again, the new one kept
    back = {**json.loads(rotated), "primaryKeyId": json.loads(original)["primaryKeyId"]}
    try:
        with restarted(platform, "auth", {SETTING: rotated}):
            # a login with the app seals her secret again, under the new primary key
            used = app.timecode(datetime.now(UTC)) + 1
            _, verified = log_in_with(harness, account, lambda _: app.generate_otp(used))
            assert verified.status_code == 200, verified.text
            assert Sealer(rotated).is_current(stored(account.username).totp_secret)
            with settings(platform, {SETTING: rotated}):
                resealed = harness.cli("keys", "auth-reseal", "--batch-size", "3")
            assert resealed.returncode == 0, resealed.stderr
            result = json.loads(resealed.stdout)
            assert result["failed"] == [] and result["already_current"] >= 1
        with restarted(platform, "auth", {SETTING: json.dumps(only_new)}):
            _, verified = log_in_with(harness, account, lambda _: code_after(app, used))
            assert verified.status_code == 200, verified.text
    finally:
        with settings(platform, {SETTING: json.dumps(back)}):
            restored = harness.cli("keys", "auth-reseal")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["failed"] == []
