"""What tests do over and over: make accounts, log in with the SMS code, read the audit log."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import mailbox
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ops.platform import Platform
from overdracht import clock, config
from overdracht.db import make_engine

PASSWORD = "een lang genoeg wachtwoord"


def valid_bsn() -> str:
    """A random nine-digit number that passes the elfproef."""
    while True:
        digits = [random.randrange(10) for _ in range(8)]
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10 and (digits[0] or digits[1]):
            return "".join(map(str, digits)) + str(last)


def mobile() -> str:
    """A random Dutch mobile number: 061-065 and 068 (060, 066 pagers, 067 and 069 are not)."""
    return f"06{random.choice('123458')}{random.randrange(10**7):07d}"


def pdf(size: int = 2048) -> bytes:
    """A body the magic-byte check reads as PDF."""
    head = b"%PDF-1.7\n"
    tail = b"\n%%EOF\n"
    return head + random.randbytes(max(size - len(head) - len(tail), 0)) + tail


def in_weeks(weeks: int) -> str:
    return (date.today() + timedelta(weeks=weeks)).isoformat()


@dataclass
class Account:
    username: str
    password: str
    phone: str
    role: str
    region: str
    full_name: str
    email: str


class Api(requests.Session):
    """A session against /api/v1 of the test platform."""

    def __init__(self, base: str, account: Account | None = None) -> None:
        super().__init__()
        self.base = base
        self.account = account

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return super().request(method, self.base + url, *args, **kwargs)


class Clock:
    """auth's clock: shift() moves it on, reset() puts it back (and lets go of what aged)."""

    def __init__(self, path: Path, harness: Harness) -> None:
        self.path = path
        self.harness = harness

    def shift(self, **delta: float) -> None:
        seconds = delta.get("seconds", 0) + 60 * (
            delta.get("minutes", 0) + 60 * delta.get("hours", 0)
        )
        clock.shift(self.path, seconds)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        # sessions idled out in the shifted time (and retention removed them): the
        # harness's auditor logs in again when next needed
        self.harness._auditor = None
        # attempts counted in the shifted time would look like an hour's worth now
        engine = make_engine(config.database_url("auth"), poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text("DELETE FROM login_throttle"))
        finally:
            engine.dispose()


class Harness:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.url = f"http://127.0.0.1:{platform.ports.gateway}"
        self.api_url = self.url + "/api/v1"
        self._auditor: Api | None = None

    # --- accounts -------------------------------------------------------------------------

    def account(
        self,
        role: str = "zorgverlener",
        region: str = "Regio Noord",
        profession: str | None = "verloskundige",
    ) -> Account:
        """Register a fresh account the way an operator does (the CLI's code path)."""
        from ops.cli import add_provider

        username = f"{role[:4]}-{uuid.uuid4().hex[:10]}"
        account = Account(
            username=username,
            password=PASSWORD,
            phone=mobile(),
            role=role,
            region=region,
            full_name=f"Test {role.capitalize()} {username[-4:]}",
            email=f"{username}@example.nl",
        )
        add_provider(
            {
                "username": username,
                "full_name": account.full_name,
                "email": account.email,
                "phone": account.phone,
                "region": region,
                "role": role,
                "profession": profession if role == "zorgverlener" else None,
                "password": PASSWORD,
            },
            {"type": "operator", "via": "tests"},
        )
        return account

    def anonymous(self) -> Api:
        return Api(self.api_url)

    def sms_code(self, phone: str, after: int = 0) -> str:
        """The newest code sent to this phone (waits briefly for it)."""
        outbox = Path(config.get("OVERDRACHT_SMS_OUTBOX"))
        for _ in range(50):
            if outbox.exists():
                lines = [json.loads(line) for line in outbox.read_text().splitlines()[after:]]
                mine = [m for m in lines if m["to"] == phone]
                if mine:
                    return re.search(r"\b(\d{6})\b", mine[-1]["body"]).group(1)
            time.sleep(0.1)
        raise AssertionError(f"no SMS sent to {phone}")

    def mail_to(self, address: str, after: int = 0) -> EmailMessage:
        """The newest e-mail to this address in the Maildir outbox, the after-th on."""
        outbox = Path(config.get("OVERDRACHT_MAIL_OUTBOX"))
        for _ in range(50):
            if outbox.exists():
                box = mailbox.Maildir(outbox, factory=None, create=False)
                mine = sorted((m for m in box if m["To"] == address), key=lambda m: m.get_date())[
                    after:
                ]
                if mine:
                    raw = mine[-1].as_bytes()
                    return email.message_from_bytes(raw, policy=email.policy.default)
            time.sleep(0.1)
        raise AssertionError(f"no e-mail to {address}")

    def activation_token(self, address: str) -> str:
        """The token of the newest activation link mailed to this address."""
        text = self.mail_to(address).get_content()
        return re.search(r"/activeren\?token=([A-Za-z0-9_-]+)", text).group(1)

    def login(self, account: Account) -> Api:
        """Password, then the SMS code from the outbox; returns a session with the bearer token."""
        api = Api(self.api_url, account)
        response = api.post(
            "/login", json={"username": account.username, "password": account.password}
        )
        assert response.status_code == 200, response.text
        code = self.sms_code(account.phone)
        response = api.post(
            "/login/verify", json={"challenge": response.json()["challenge"], "code": code}
        )
        assert response.status_code == 200, response.text
        api.headers["Authorization"] = f"Bearer {response.json()['token']}"
        api.cookies.clear()  # the bearer token alone identifies this session
        return api

    def provider(self, **kwargs: Any) -> Api:
        return self.login(self.account(**kwargs))

    # --- clients and documents ------------------------------------------------------------

    def new_client(self, api: Api, **overrides: Any) -> dict[str, Any]:
        data = {
            "maiden_name": "Jansen",
            "birth_date": "1992-03-14",
            "bsn": valid_bsn(),
            "phone": mobile(),
            **overrides,
        }
        response = api.post("/clients", json=data)
        assert response.status_code == 201, response.text
        return {**data, **response.json()}

    def relate(self, api: Api, client: dict[str, Any]) -> None:
        """Find her (birth date and BSN) and declare a treatment relationship, as a provider
        taking over does."""
        criteria = {"birth_date": client["birth_date"], "bsn": client["bsn"]}
        assert api.post("/clients/search", json=criteria).status_code == 200
        declared = api.post(f"/clients/{client['id']}/relationship")
        assert declared.status_code == 201, declared.text

    def upload(
        self,
        api: Api,
        client_id: str,
        body: bytes | None = None,
        document_type: str = "zwangerschapskaart",
        removal_date: str | None = None,
        filename: str = "kaart.pdf",
    ) -> requests.Response:
        return api.post(
            f"/clients/{client_id}/documents",
            data={"document_type": document_type, "removal_date": removal_date or in_weeks(20)},
            files={"file": (filename, pdf() if body is None else body, "application/octet-stream")},
        )

    # --- audit ----------------------------------------------------------------------------

    @property
    def auditor(self) -> Api:
        if self._auditor is None:
            self._auditor = self.provider(role="auditor", region="Landelijk")
        return self._auditor

    def audit(self, **filters: str) -> list[dict[str, Any]]:
        """Every audit record matching the filters, following the cursor."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {**filters, **({"cursor": cursor} if cursor else {})}
            response = self.auditor.get("/audit/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            events += page["events"]
            cursor = page["next_cursor"]
            if not cursor:
                return events

    def audit_until(
        self,
        check: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15,
        **filters: str,
    ) -> list[dict[str, Any]]:
        """The audit log is written asynchronously: poll until check holds, then settle."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.audit(**filters)
            if check(events):
                time.sleep(1.5)  # anything late (a duplicate, a stray event) shows up by now
                return self.audit(**filters)
            if time.monotonic() > deadline:
                return events
            time.sleep(0.3)

    # --- processes ------------------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run the installed `overdracht` command against this platform."""
        command = Path(sys.executable).parent / "overdracht"
        return subprocess.run(  # noqa: S603
            [str(command), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.platform.env,
            timeout=300,
            check=False,
        )


def shown_again(response: requests.Response, path: str) -> bool:
    """A refused page form: answered by a redirect to its own page (Post/Redirect/Get),
    whose GET then shows the errors."""
    return (
        [r.status_code for r in response.history] == [302]
        and response.status_code == 200
        and urlsplit(response.url).path == path
    )


def principal_of(platform: Platform, api: Api) -> str:
    """Her principal, asked of auth as the gateway asks it for each of her requests."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from overdracht.bus import standalone_replies
    from overdracht.contracts import sign_system_token

    token = api.headers["Authorization"].removeprefix("Bearer ")
    caller = sign_system_token("gateway", config.private_key("gateway"), call="auth.authenticate")
    settings = {"AMQP_URI": platform.env["OVERDRACHT_GATEWAY_AMQP_URI"], "serializer": "json"}
    with ClusterRpcProxy(settings, reply_listener_cls=standalone_replies("gateway")) as rpc:
        return rpc.auth.authenticate(caller, token)["principal"]


def enrol(api: Api) -> tuple[pyotp.TOTP, list[str]]:
    """Set the authenticator app up for her: the app (its TOTP), and her recovery codes."""
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


@contextlib.contextmanager
def database(service: str) -> Iterator[Session]:
    """A service's database as its runtime login sees it (what an insider with it can do),
    in one transaction."""
    engine = make_engine(config.database_url(service), poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


@contextlib.contextmanager
def settings(platform, values: dict[str, str]) -> Iterator[None]:
    """These settings for processes started meanwhile (the CLI, a restarted service)."""
    saved = {name: platform.env[name] for name in values}
    platform.env.update(values)
    try:
        yield
    finally:
        platform.env.update(saved)


@contextlib.contextmanager
def restarted(platform, service: str, settings: dict[str, str]) -> Iterator[None]:
    """Run service with these settings meanwhile; the ones it had before afterwards."""
    saved = {name: platform.env.get(name) for name in settings}
    platform.stop(service)
    platform.env.update(settings)
    try:
        platform.start_again(service)
        yield
    finally:
        platform.stop(service)
        for name, value in saved.items():
            if value is None:
                platform.env.pop(name, None)
            else:
                platform.env[name] = value
        platform.start_again(service)
