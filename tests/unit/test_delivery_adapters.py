"""SMS and e-mail adapters against real local servers: one playing CM.com, one SMTP."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import mailbox
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.auth.delivery import (
    MAIL_FAILED_MESSAGE,
    SMS_FAILED_MESSAGE,
    CmSms,
    DeliveryFailed,
    MaildirMail,
    MailSender,
    OutboxSms,
    SmsSender,
    SmtpMail,
    mail_from_config,
    sms_from_config,
)
from tests.servers import FakeCm, SmtpRecorder, free_port, run_in_thread

TOKEN = "00000000-1111-2222-3333-444444444444"
CODE_BODY = "Uw Overdracht-code is 314159. Deel deze code met niemand."
DUTCH_TEXT = (
    "Beste Zoë,\n\nUw account is geactiveerd. Één klik: https://x.invalid/a/geheim\nGroet, Jörg"
)


# --- a local CM.com ----------------------------------------------------------------------


@pytest.fixture
def cm() -> Iterator[FakeCm]:
    server = FakeCm()
    run_in_thread(server)
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def _cm_sms(url: str, timeout: float = 2, retries: int = 2) -> CmSms:
    return CmSms(url, TOKEN, "Overdracht", timeout=timeout, retries=retries)


def test_cm_gets_the_international_number_body_sender_and_token(cm):
    _cm_sms(cm.url).send("0612345678", CODE_BODY)
    [(payload, headers)] = cm.requests
    assert payload["messages"]["authentication"] == {"productToken": TOKEN}
    assert headers["X-CM-PRODUCTTOKEN"] == TOKEN
    [msg] = payload["messages"]["msg"]
    assert msg["to"] == [{"number": "0031612345678"}]
    assert msg["from"] == "Overdracht"
    assert msg["body"] == {"type": "auto", "content": CODE_BODY}
    assert msg["allowedChannels"] == ["SMS"]
    assert 1 <= len(msg["reference"]) <= 32 and msg["reference"].isalnum()


def test_a_503_is_tried_again_with_the_same_reference(cm):
    cm.mode, cm.failures_left = "fail_then_succeed", 1
    _cm_sms(cm.url).send("0612345678", CODE_BODY)
    assert len(cm.requests) == 2
    first, second = (payload["messages"]["msg"][0] for payload, _ in cm.requests)
    assert first == second  # the same message, reference and all


def test_503_past_the_retries_fails(cm):
    cm.mode, cm.failures_left = "fail_then_succeed", 10
    with pytest.raises(DeliveryFailed):
        _cm_sms(cm.url, retries=2).send("0612345678", CODE_BODY)
    assert len(cm.requests) == 3


@pytest.mark.parametrize("mode", ["bad_request", "rejected"])
def test_a_refusal_fails_after_one_try_without_the_body(cm, caplog, mode):
    cm.mode = mode
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryFailed) as failed:
        _cm_sms(cm.url).send("0612345678", CODE_BODY)
    assert len(cm.requests) == 1
    assert str(failed.value) == SMS_FAILED_MESSAGE
    for text in (str(failed.value), repr(failed.value), failed.value.reason, caplog.text):
        assert "314159" not in text and TOKEN not in text
    assert "06-****5678" in caplog.text


def test_a_hanging_cm_fails_within_the_timeouts(cm):
    cm.mode = "hang"
    timeout, retries = 0.4, 2
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failed:
        _cm_sms(cm.url, timeout=timeout, retries=retries).send("0612345678", CODE_BODY)
    elapsed = time.monotonic() - started
    assert len(cm.requests) == retries + 1
    # a correctness bound (the tries, their back-off and slack), not a benchmark
    assert timeout * (retries + 1) <= elapsed < timeout * (retries + 1) + 3
    assert "314159" not in str(failed.value)


def test_a_closed_port_fails():
    url = f"http://127.0.0.1:{free_port()}/v1.0/message"
    with pytest.raises(DeliveryFailed) as failed:
        _cm_sms(url, timeout=1).send("0612345678", CODE_BODY)
    assert "314159" not in str(failed.value) and "314159" not in failed.value.reason


def test_outbox_sms_appends_one_private_line_per_message(tmp_path):
    path = tmp_path / "outbox" / "sms.jsonl"
    outbox = OutboxSms(path)
    outbox.send("0612345678", "een")
    outbox.send("0687654321", "twee")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["to"], line["body"]) for line in lines] == [
        ("0612345678", "een"),
        ("0687654321", "twee"),
    ]
    assert set(lines[0]) == {"to", "body", "sent_at"}
    assert path.stat().st_mode & 0o777 == 0o600


# --- a local SMTP server -----------------------------------------------------------------


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"overdracht" and auth_data.password == b"smtp-secret"
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def smtp_server() -> Iterator[tuple[SmtpRecorder, int, dict]]:
    """A started aiosmtpd on a free port; the handler's answers can be set before sending."""
    handler = SmtpRecorder()
    port = free_port()
    options: dict = {}
    controllers: list[Controller] = []

    def start(**smtpd_options) -> None:
        controller = Controller(handler, hostname="127.0.0.1", port=port, **smtpd_options)
        controller.start()
        controllers.append(controller)

    options["start"] = start
    try:
        yield handler, port, options
    finally:
        for controller in controllers:
            controller.stop()


def _smtp_mail(port: int, username: str = "", password: str = "") -> SmtpMail:
    return SmtpMail(
        "127.0.0.1",
        port,
        username,
        password,
        starttls=False,
        sender="Overdracht <noreply@overdracht.invalid>",
        timeout=5,
    )


def _parsed(content: bytes) -> email.message.EmailMessage:
    """A message as a mail reader sees it (SMTP carries CRLF line ends, files LF)."""
    return email.message_from_bytes(content.replace(b"\r\n", b"\n"), policy=email.policy.default)


def test_smtp_delivers_headers_and_a_utf8_body(smtp_server):
    handler, port, options = smtp_server
    options["start"]()
    _smtp_mail(port).send("zoe@example.nl", "Uw account bij Overdracht", DUTCH_TEXT)
    [(mail_from, rcpt_tos, content)] = handler.received
    assert mail_from == "noreply@overdracht.invalid"
    assert rcpt_tos == ["zoe@example.nl"]
    message = _parsed(content)
    assert message["From"] == "Overdracht <noreply@overdracht.invalid>"
    assert message["To"] == "zoe@example.nl"
    assert message["Subject"] == "Uw account bij Overdracht"
    assert message["Date"] and message["Message-ID"].endswith("@overdracht.invalid>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == DUTCH_TEXT + "\n"


def test_smtp_sends_an_html_alternative_when_given(smtp_server):
    handler, port, options = smtp_server
    options["start"]()
    _smtp_mail(port).send("zoe@example.nl", "Ë-mail", DUTCH_TEXT, "<p>Beste Zoë</p>")
    message = _parsed(handler.received[0][2])
    assert message["Subject"] == "Ë-mail"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain.get_content() == DUTCH_TEXT + "\n"
    assert html.get_content() == "<p>Beste Zoë</p>\n"


# aiosmtpd warns of AUTH without TLS (fine on loopback) and of its own deprecated attribute
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_smtp_logs_in_when_a_username_is_set(smtp_server):
    handler, port, options = smtp_server
    options["start"](authenticator=_authenticator, auth_require_tls=False, auth_required=True)
    _smtp_mail(port, "overdracht", "smtp-secret").send("zoe@example.nl", "Hallo", "Tekst")
    assert len(handler.received) == 1
    with pytest.raises(DeliveryFailed) as failed:  # 535: permanent, not tried again
        _smtp_mail(port, "overdracht", "wrong").send("zoe@example.nl", "Hallo", "Tekst")
    assert failed.value.reason == "SMTP 535"
    assert len(handler.received) == 1


def test_a_permanent_refusal_fails_at_once(smtp_server, caplog):
    handler, port, options = smtp_server
    handler.answers = ["550 5.7.1 Refused"] * 3
    options["start"]()
    caplog.set_level(logging.DEBUG, logger="services")
    with pytest.raises(DeliveryFailed) as failed:
        _smtp_mail(port).send("zoe@example.nl", "Activatie", DUTCH_TEXT)
    assert handler.tries == 1 and handler.received == []
    assert str(failed.value) == MAIL_FAILED_MESSAGE
    assert failed.value.reason == "SMTP 550"
    for text in (str(failed.value), failed.value.reason, caplog.text):
        assert "geheim" not in text and "zoe@" not in text
    assert "***@example.nl" in caplog.text


def test_a_temporary_refusal_is_tried_once_more(smtp_server):
    handler, port, options = smtp_server
    handler.answers = ["451 4.3.0 Try again later"]
    options["start"]()
    _smtp_mail(port).send("zoe@example.nl", "Activatie", DUTCH_TEXT)
    assert handler.tries == 2
    assert len(handler.received) == 1


def test_no_smtp_server_fails(smtp_server):
    _, port, _ = smtp_server  # never started
    with pytest.raises(DeliveryFailed) as failed:
        _smtp_mail(port).send("zoe@example.nl", "Activatie", DUTCH_TEXT)
    assert failed.value.reason == "ConnectionRefusedError"


# --- the Maildir outbox ------------------------------------------------------------------


def test_maildir_outbox_holds_one_readable_message(tmp_path):
    path = tmp_path / "outbox" / "mail"
    MaildirMail(path, "Overdracht <noreply@overdracht.invalid>").send(
        "zoe@example.nl", "Uw account bij Overdracht", DUTCH_TEXT
    )
    box = mailbox.Maildir(path, create=False)
    [key] = box.keys()
    message = _parsed(box.get_bytes(key))
    assert message["From"] == "Overdracht <noreply@overdracht.invalid>"
    assert message["To"] == "zoe@example.nl"
    assert message["Subject"] == "Uw account bij Overdracht"
    assert message["Date"] and message["Message-ID"]
    assert message.get_content() == DUTCH_TEXT + "\n"


# --- selection from settings -------------------------------------------------------------


@pytest.fixture
def settings(monkeypatch, tmp_path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    monkeypatch.setenv("OVERDRACHT_ENV", "development")
    monkeypatch.setenv("OVERDRACHT_SMS_OUTBOX", str(tmp_path / "sms.jsonl"))
    monkeypatch.setenv("OVERDRACHT_MAIL_OUTBOX", str(tmp_path / "mail"))
    from overdracht import config

    config._file_values.cache_clear()
    yield monkeypatch
    config._file_values.cache_clear()


def test_development_defaults_to_the_outboxes(settings):
    assert isinstance(sms_from_config(), OutboxSms)
    assert isinstance(mail_from_config(), MaildirMail)


@pytest.mark.parametrize("sender", [SmsSender, MailSender])
def test_production_refuses_the_outboxes(settings, sender):
    settings.setenv("OVERDRACHT_ENV", "production")
    with pytest.raises(RuntimeError, match="outbox.*refused in production"):
        sender().setup()


def test_cm_and_smtp_are_selected_with_their_settings(settings):
    settings.setenv("OVERDRACHT_ENV", "production")
    settings.setenv("OVERDRACHT_SMS_PROVIDER", "cm")
    settings.setenv("OVERDRACHT_SMS_CM_PRODUCT_TOKEN", TOKEN)
    settings.setenv("OVERDRACHT_MAIL_PROVIDER", "smtp")
    settings.setenv("OVERDRACHT_SMTP_HOST", "smtp.example.nl")
    settings.setenv("OVERDRACHT_SMTP_USERNAME", "overdracht")
    sms_sender, mail_sender = SmsSender(), MailSender()
    sms_sender.setup()
    mail_sender.setup()
    sms, mail = sms_sender.get_dependency(None), mail_sender.get_dependency(None)
    assert isinstance(sms, CmSms)
    assert (sms.url, sms.product_token, sms.sender, sms.timeout) == (
        "https://gw.messaging.cm.com/v1.0/message",
        TOKEN,
        "Overdracht",
        5.0,
    )
    assert isinstance(mail, SmtpMail)
    assert (mail.host, mail.port, mail.username, mail.starttls, mail.timeout) == (
        "smtp.example.nl",
        587,
        "overdracht",
        True,
        10.0,
    )


@pytest.mark.parametrize(
    ("name", "build"),
    [("OVERDRACHT_SMS_PROVIDER", sms_from_config), ("OVERDRACHT_MAIL_PROVIDER", mail_from_config)],
)
def test_an_unknown_provider_names_the_setting(settings, name, build):
    settings.setenv(name, "pigeon")
    with pytest.raises(RuntimeError, match=name):
        build()


def test_cm_without_a_product_token_refuses_to_start(settings):
    settings.setenv("OVERDRACHT_SMS_PROVIDER", "cm")
    settings.delenv("OVERDRACHT_SMS_CM_PRODUCT_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="OVERDRACHT_SMS_CM_PRODUCT_TOKEN"):
        sms_from_config()


def test_a_failed_maildir_write_fails_and_leaves_nothing(tmp_path):
    # the outbox path is a file: no message can be written, and none is half-written
    blocker = tmp_path / "mail"
    blocker.write_text("not a directory")
    with pytest.raises(DeliveryFailed):
        MaildirMail(blocker).send("zoe@example.nl", "Activatie", DUTCH_TEXT)
    assert [p.name for p in Path(tmp_path).iterdir()] == ["mail"]
