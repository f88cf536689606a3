"""Logging in under attack: passwords, SMS codes, locks and throttles, over HTTP.

The test platform trusts one proxy (conftest), so each test comes "from" addresses of
its own through X-Forwarded-For, and throttling them touches no other test. Locks of 15
minutes and more are waited out by moving auth's clock (OVERDRACHT_CLOCK_FILE).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ops.cli import add_provider
from overdracht import config
from overdracht.contracts import InvalidInput
from tests.support import Account, Api, mobile, shown_again

SAME_ANSWER = {
    "error": {"code": "login_failed", "message": "Onjuiste gebruikersnaam of wachtwoord."}
}


def address() -> str:
    """A random address in a /24 of its own (almost surely): 10.x.y.z."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def api_from(harness, ip: str | None = None) -> Api:
    api = harness.anonymous()
    api.headers["X-Forwarded-For"] = ip or address()
    return api


def start(harness, username: str, password: str, ip: str | None = None) -> requests.Response:
    return api_from(harness, ip).post("/login", json={"username": username, "password": password})


def wrong(harness, account: Account, ip: str | None = None) -> requests.Response:
    return start(harness, account.username, "niet het goede wachtwoord", ip)


def lock(harness, account: Account) -> None:
    for _ in range(10):
        assert wrong(harness, account).status_code == 401


def log_in(harness, account: Account, ip: str | None = None) -> Api:
    """Password and SMS code from one address; the API session with its bearer token."""
    api = api_from(harness, ip)
    started = api.post("/login", json={"username": account.username, "password": account.password})
    assert started.status_code == 200, started.text
    code = harness.sms_code(account.phone)
    verified = api.post(
        "/login/verify", json={"challenge": started.json()["challenge"], "code": code}
    )
    assert verified.status_code == 200, verified.text
    api.headers["Authorization"] = f"Bearer {verified.json()['token']}"
    api.cookies.clear()
    return api


def not_the(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def masked(phone: str) -> str:
    return f"06-****{phone[-4:]}"


def csrf(page: requests.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sms_count(phone: str) -> int:
    outbox = Path(config.get("OVERDRACHT_SMS_OUTBOX"))
    return sum(json.loads(line)["to"] == phone for line in outbox.read_text().splitlines())


def account_with(harness, password: str, full_name: str = "Marieke Vermeulen") -> Account:
    username = f"mv-{uuid.uuid4().hex[:10]}"
    account = Account(
        username=username,
        password=password,
        phone=mobile(),
        role="zorgverlener",
        region="Regio Noord",
        full_name=full_name,
        email=f"{username}@example.nl",
    )
    add_provider(
        {
            "username": username,
            "full_name": full_name,
            "email": account.email,
            "phone": account.phone,
            "region": account.region,
            "role": "zorgverlener",
            "profession": "verloskundige",
            "password": password,
        },
        {"type": "operator", "via": "tests"},
    )
    return account


# --- passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaaaaaa", "herhaalt tekens"),
        ("password1234", "veelgebruikt wachtwoord"),
        ("MariekeVermeulen1", "uw naam, gebruikersnaam of e-mailadres"),
    ],
)
def test_weak_and_common_passwords_are_refused_when_registering(harness, password, why):
    with pytest.raises(InvalidInput) as refused:
        account_with(harness, password)

    assert refused.value.code == "weak_password"
    assert refused.value.message.startswith("Dit wachtwoord is te makkelijk te raden")
    assert why in refused.value.message


def test_the_cli_refuses_a_guessable_password_in_dutch(harness):
    username = f"cli-{uuid.uuid4().hex[:8]}"
    result = harness.cli(
        "provider",
        "add",
        "--username",
        username,
        "--full-name",
        "Anke de Boer",
        "--email",
        f"{username}@example.nl",
        "--phone",
        mobile(),
        "--region",
        "Regio Noord",
        "--role",
        "coordinator",
        "--password-stdin",
        stdin="password1234\n",
    )

    assert result.returncode == 2
    assert "fout: Dit wachtwoord is te makkelijk te raden" in result.stderr
    assert start(harness, username, "password1234").status_code == 401  # nothing was made


def test_a_strong_password_of_128_characters_works(harness):
    password = ("lente bloemen fietsen tussen de dijken bij Harlingen, " * 3)[:128]
    assert len(password) == 128
    account = account_with(harness, password)

    api = log_in(harness, account)
    assert api.get("/me").json()["username"] == account.username
    with pytest.raises(InvalidInput) as refused:
        account_with(harness, password + "x")
    assert refused.value.code == "invalid_password"


def test_changing_her_password_ends_her_other_sessions(harness):
    account = harness.account()
    here, elsewhere = log_in(harness, account), log_in(harness, account)
    new = "zeven zwarte zwanen zwemmen zuidwaarts"

    cases = [
        ({"current_password": "niet het goede", "new_password": new}, "wrong_current_password"),
        ({"current_password": account.password, "new_password": "password1234"}, "weak_password"),
        ({"current_password": account.password, "new_password": "kort"}, "invalid_password"),
        ({"current_password": account.password, "new_password": account.password}, "same_password"),
    ]
    for body, code in cases:
        refused = here.post("/me/password", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code
    assert "te makkelijk te raden" in here.post("/me/password", json=cases[1][0]).text
    assert elsewhere.get("/me").status_code == 200  # nothing changed yet

    changed = here.post(
        "/me/password", json={"current_password": account.password, "new_password": new}
    )
    assert changed.status_code == 204, changed.text
    assert here.get("/me").status_code == 200  # this session stays
    assert elsewhere.get("/me").status_code == 401  # the other one ended
    assert start(harness, account.username, account.password).json() == SAME_ANSWER
    log_in(harness, Account(**{**account.__dict__, "password": new}))

    events = harness.audit_until(
        lambda es: any(e["event"] == "provider.password_changed" for e in es),
        actor=account.username,
    )
    changes = [e for e in events if e["event"] == "provider.password_changed"]
    assert len(changes) == 1 and changes[0]["detail"] == {"sessions_ended": 1}
    assert new not in json.dumps(events) and account.password not in json.dumps(events)


def test_changing_the_password_with_the_cookie_alone_needs_the_csrf_header(harness):
    account = harness.account()
    api = api_from(harness)
    started = api.post("/login", json={"username": account.username, "password": account.password})
    api.post(
        "/login/verify",
        json={"challenge": started.json()["challenge"], "code": harness.sms_code(account.phone)},
    )
    body = {"current_password": account.password, "new_password": "zeven zwarte zwanen zwemmen"}

    assert api.post("/me/password", json=body).status_code == 401  # cookie only: refused
    assert start(harness, account.username, account.password).status_code == 200  # unchanged
    assert (
        api.post("/me/password", json=body, headers={"X-Requested-With": "fetch"}).status_code
        == 204
    )


def test_the_password_page_shows_each_error_beside_its_field(harness):
    account = harness.account()
    web = requests.Session()
    web.headers["X-Forwarded-For"] = address()
    started = web.post(
        harness.api_url + "/login",
        json={"username": account.username, "password": account.password},
    )
    web.post(
        harness.api_url + "/login/verify",
        json={"challenge": started.json()["challenge"], "code": harness.sms_code(account.phone)},
    )
    url = harness.url + "/wachtwoord"
    assert "Wachtwoord wijzigen" in web.get(harness.url + "/overzicht").text
    token = csrf(web.get(url))
    new = "zeven zwarte zwanen zwemmen zuidwaarts"
    form = {"current_password": account.password, "new_password": new, "new_password_repeat": new}

    assert web.post(url, data=form).status_code == 400  # no CSRF token
    wrong_current = web.post(url, data={**form, "csrf": token, "current_password": "fout fout"})
    assert shown_again(wrong_current, "/wachtwoord")
    assert 'id="current-password-error"' in wrong_current.text
    assert "Uw huidige wachtwoord klopt niet." in wrong_current.text
    weak = {**form, "csrf": token, "new_password": "password1234"}
    weak = web.post(url, data={**weak, "new_password_repeat": "password1234"})
    assert shown_again(weak, "/wachtwoord") and 'id="new-password-error"' in weak.text
    assert "te makkelijk te raden" in weak.text
    mismatch = web.post(url, data={**form, "csrf": token, "new_password_repeat": new + "!"})
    assert shown_again(mismatch, "/wachtwoord")
    assert 'id="new-password-repeat-error"' in mismatch.text
    assert "new-password-repeat-error" not in web.get(url).text  # shown once

    done = web.post(url, data={**form, "csrf": token}, allow_redirects=False)
    assert done.status_code == 302 and done.headers["Location"].endswith("/overzicht")
    assert "Uw wachtwoord is gewijzigd." in web.get(harness.url + "/overzicht").text
    assert start(harness, account.username, new).status_code == 200


# --- the SMS code ------------------------------------------------------------------------


def test_three_mistyped_codes_spend_the_challenge(harness):
    account = harness.account()
    api = api_from(harness)
    started = api.post("/login", json={"username": account.username, "password": account.password})
    challenge = started.json()["challenge"]
    code = harness.sms_code(account.phone)

    answers = [
        api.post("/login/verify", json={"challenge": challenge, "code": not_the(code)})
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert [a.json()["error"]["code"] for a in answers] == [
        "wrong_code",
        "wrong_code",
        "code_failed",
    ]
    assert (
        answers[0].json()["error"]["message"]
        == "De code is onjuist. U kunt het nog 2 keer proberen."
    )
    assert "nog 1 keer" in answers[1].json()["error"]["message"]
    spent = api.post("/login/verify", json={"challenge": challenge, "code": code})
    assert spent.status_code == 401 and spent.json()["error"]["code"] == "code_failed"


def test_after_two_mistakes_the_right_code_still_logs_her_in(harness):
    account = harness.account()
    api = api_from(harness)
    started = api.post("/login", json={"username": account.username, "password": account.password})
    challenge = started.json()["challenge"]
    code = harness.sms_code(account.phone)

    for _ in range(2):
        assert (
            api.post("/login/verify", json={"challenge": challenge, "code": not_the(code)}).json()[
                "error"
            ]["code"]
            == "wrong_code"
        )
    verified = api.post("/login/verify", json={"challenge": challenge, "code": code})
    assert verified.status_code == 200, verified.text


def test_a_new_code_waits_for_the_cooldown_and_goes_to_the_masked_number(harness, auth_clock):
    account = harness.account()
    api = api_from(harness)
    started = api.post("/login", json={"username": account.username, "password": account.password})
    assert started.json()["sent_to"] == masked(account.phone)
    challenge = started.json()["challenge"]
    first = harness.sms_code(account.phone)
    sent = sms_count(account.phone)

    too_soon = api.post("/login/resend", json={"challenge": challenge})
    assert too_soon.status_code == 429
    assert too_soon.json()["error"]["code"] == "resend_too_soon"
    assert 1 <= int(too_soon.headers["Retry-After"]) <= 60
    assert sms_count(account.phone) == sent

    auth_clock.shift(seconds=61)
    again = api.post("/login/resend", json={"challenge": challenge})
    assert again.status_code == 200, again.text
    assert again.json() == {
        "challenge": challenge,
        "method": "sms",
        "sent_to": masked(account.phone),
    }
    assert sms_count(account.phone) == sent + 1
    second = harness.sms_code(account.phone)
    if second != first:  # one in a million they are the same
        old = api.post("/login/verify", json={"challenge": challenge, "code": first})
        assert old.json()["error"]["code"] == "wrong_code"
    assert (
        api.post("/login/verify", json={"challenge": challenge, "code": second}).status_code == 200
    )


def test_the_code_page_shows_the_number_keeps_the_challenge_and_resends(harness, auth_clock):
    account = harness.account()
    web = requests.Session()
    web.headers["X-Forwarded-For"] = address()
    login = harness.url + "/inloggen"

    assert web.post(login, data={"username": account.username, "password": "x"}).status_code == 400
    refused = web.post(
        login,
        data={"csrf": csrf(web.get(login)), "username": account.username, "password": "fout" * 4},
    )
    assert shown_again(refused, "/inloggen")
    assert 'id="password-error"' in refused.text and "Onjuiste gebruikersnaam" in refused.text
    assert f'value="{account.username}"' in refused.text  # the username kept, not the password
    assert "fout" * 4 not in refused.text

    to_code = web.post(
        login,
        data={
            "csrf": csrf(web.get(login)),
            "username": account.username,
            "password": account.password,
        },
        allow_redirects=False,
    )
    assert to_code.status_code == 302 and to_code.headers["Location"].endswith("/inloggen/code")
    page = web.get(harness.url + "/inloggen/code")
    assert masked(account.phone) in page.text and account.phone not in page.text
    code = harness.sms_code(account.phone)
    token = csrf(page)

    mistyped = web.post(harness.url + "/inloggen/code", data={"csrf": token, "code": not_the(code)})
    assert shown_again(mistyped, "/inloggen/code")
    assert 'id="code-error"' in mistyped.text and "nog 2 keer" in mistyped.text

    resend = harness.url + "/inloggen/code/opnieuw"
    assert web.post(resend, data={}).status_code == 400  # no CSRF token
    too_soon = web.post(resend, data={"csrf": token})
    assert shown_again(too_soon, "/inloggen/code")
    assert 'id="resend-error"' in too_soon.text and "seconden" in too_soon.text
    auth_clock.shift(seconds=61)
    sent = web.post(resend, data={"csrf": token})
    assert (
        sent.status_code == 200
        and f"nieuwe code gestuurd naar {masked(account.phone)}" in sent.text
    )
    code = harness.sms_code(account.phone)

    assert web.post(harness.url + "/inloggen/code", data={"code": code}).status_code == 400
    done = web.post(
        harness.url + "/inloggen/code", data={"csrf": token, "code": code}, allow_redirects=False
    )
    assert done.status_code == 302 and done.headers["Location"].endswith("/overzicht")


# --- locks -------------------------------------------------------------------------------


def test_ten_failures_lock_for_15_minutes_and_each_next_lock_twice_as_long(harness, auth_clock):
    account = harness.account()
    for _ in range(9):
        assert wrong(harness, account).json() == SAME_ANSWER
    assert start(harness, account.username, account.password).status_code == 200  # 9: open
    assert wrong(harness, account).json() == SAME_ANSWER  # the 10th
    locked = start(harness, account.username, account.password)
    assert locked.status_code == 401 and locked.json() == SAME_ANSWER

    auth_clock.shift(minutes=14)
    assert start(harness, account.username, account.password).status_code == 401
    auth_clock.shift(minutes=2)
    assert start(harness, account.username, account.password).status_code == 200

    lock(harness, account)  # the second lock, without a login in between: 30 minutes
    auth_clock.shift(minutes=16)
    assert start(harness, account.username, account.password).status_code == 401
    auth_clock.shift(minutes=15)
    assert start(harness, account.username, account.password).status_code == 200

    log_in(harness, account)  # a login: the next lock is the first again
    lock(harness, account)
    auth_clock.shift(minutes=16)
    assert start(harness, account.username, account.password).status_code == 200

    auth_clock.reset()
    events = harness.audit_until(
        lambda es: len([e for e in es if e["object"]["username"] == account.username]) >= 3,
        event="provider.locked",
    )
    mine = [e for e in events if e["object"]["username"] == account.username]
    assert [e["detail"]["minutes"] for e in mine] == [15, 30, 15]


def test_attempts_during_a_lock_do_not_lengthen_it(harness, auth_clock):
    account = harness.account()
    lock(harness, account)

    auth_clock.shift(minutes=10)
    for _ in range(12):  # an attacker keeps going, from everywhere
        assert wrong(harness, account).json() == SAME_ANSWER
    auth_clock.shift(minutes=6)
    assert start(harness, account.username, account.password).status_code == 200
    # and none of them counted towards the next lock
    assert wrong(harness, account).status_code == 401
    assert start(harness, account.username, account.password).status_code == 200


def test_a_session_she_has_outlives_a_lock(harness):
    account = harness.account()
    api = log_in(harness, account)
    lock(harness, account)

    assert api.get("/me").status_code == 200


def test_the_beheerder_unlocks_an_account_with_the_cli(harness):
    account = harness.account()
    lock(harness, account)
    assert start(harness, account.username, account.password).status_code == 401

    result = harness.cli("provider", "unlock", account.username.upper())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"username": account.username, "was_locked": True}
    assert start(harness, account.username, account.password).status_code == 200

    unknown = harness.cli("provider", "unlock", "niemand-hier")
    assert unknown.returncode == 2
    assert "fout: Er is geen account met deze gebruikersnaam." in unknown.stderr
    events = harness.audit_until(
        lambda es: any(e["object"]["username"] == account.username for e in es),
        event="provider.unlocked",
    )
    mine = [e for e in events if e["object"]["username"] == account.username]
    assert len(mine) == 1 and mine[0]["detail"] == {"was_locked": True}
    assert mine[0]["actor"] == {"type": "operator", "via": "cli"}


# --- throttling --------------------------------------------------------------------------


def failures(harness, addresses: list[str]) -> list[int]:
    """One failed login (an unknown username) from each address, eight at a time."""

    def one(ip: str) -> int:
        return start(harness, f"niemand-{uuid.uuid4().hex[:8]}", "x" * 12, ip).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, addresses))


def test_logins_are_throttled_per_address(harness, auth_clock):
    here, elsewhere = address(), address()
    account = harness.account()

    assert failures(harness, [here] * 29) == [401] * 29
    log_in(harness, account, here)  # a login that works is no failure
    assert failures(harness, [here]) == [401]  # the 30th failure
    refused = start(harness, account.username, account.password, here)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert "Te veel mislukte inlogpogingen" in refused.json()["error"]["message"]
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 120  # an hour's 30 attempts: one comes back every 2 minutes
    verify = api_from(harness, here).post("/login/verify", json={"challenge": "x", "code": "1"})
    assert verify.status_code == 429

    web = requests.Session()
    web.headers["X-Forwarded-For"] = here
    page = web.get(harness.url + "/inloggen")
    refused_page = web.post(
        harness.url + "/inloggen",
        data={"csrf": csrf(page), "username": account.username, "password": account.password},
    )
    assert shown_again(refused_page, "/inloggen")
    assert 'id="form-error"' in refused_page.text and "Probeer het over" in refused_page.text

    assert start(harness, account.username, account.password, elsewhere).status_code == 200
    auth_clock.shift(seconds=wait + 1)
    assert start(harness, account.username, account.password, here).status_code == 200


@pytest.mark.parametrize("family", ["IPv4 /24", "IPv6 /64"])
def test_logins_are_throttled_per_network(harness, family):
    a, b = random.randrange(256), random.randrange(255)
    if family == "IPv4 /24":  # not in 10/8, where the other tests' addresses are
        network = [f"192.168.{b}.{i}" for i in range(1, 101)]
        same, other = f"192.168.{b}.200", f"192.168.{b + 1}.200"
    else:
        network = [f"2001:db8:{a:x}:{b:x}::{i:x}" for i in range(1, 101)]
        same, other = f"2001:db8:{a:x}:{b:x}:ffff::1", f"2001:db8:{a:x}:{b + 1:x}::1"

    assert failures(harness, network) == [401] * 100  # no address reaches its own limit
    refused = start(harness, "niemand-hier", "x" * 12, same)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert start(harness, "niemand-hier", "x" * 12, other).status_code == 401


# --- alike -------------------------------------------------------------------------------


def test_unknown_wrong_and_locked_are_answered_alike_in_the_same_time(harness):
    wrongly, locked = harness.account(), harness.account()
    lock(harness, locked)
    tries = {
        "unknown": lambda: start(harness, f"niemand-{uuid.uuid4().hex[:8]}", "een wachtwoord"),
        "wrong": lambda: wrong(harness, wrongly),
        "locked": lambda: start(harness, locked.username, locked.password),  # the right one
    }
    answers: dict[str, list] = {kind: [] for kind in tries}
    times: dict[str, list[float]] = {kind: [] for kind in tries}
    for _ in range(7):  # interleaved, so that a slow moment of the machine hits all three
        for kind, attempt in tries.items():
            began = time.perf_counter()
            response = attempt()
            times[kind].append(time.perf_counter() - began)
            answers[kind].append((response.status_code, response.json()))

    for kind in tries:
        assert answers[kind] == [(401, SAME_ANSWER)] * 7, kind
    medians = {kind: statistics.median(times[kind]) for kind in tries}
    # the slow argon2 verification (tenths of a second) runs for all three; skipping it for
    # one would make that one several times faster
    for kind in ("unknown", "locked"):
        assert abs(medians[kind] - medians["wrong"]) < 0.5 * medians["wrong"], medians
