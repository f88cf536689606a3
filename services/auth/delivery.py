"""Handing SMS and e-mail over to the outside world, or to outboxes in development.

Every adapter raises DeliveryFailed when a message could not be handed over; its text is
what the user reads. Log lines name the recipient masked and the reason as a status, a
reply code or an exception's class name: never a body (codes, passwords, activation
links), never a provider's error text (which may quote what was sent).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import mailbox
import os
import smtplib
import ssl
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from overdracht import config
from overdracht.contracts import N_

log = logging.getLogger(__name__)

#: what the user reads (on the pages, not in a message) when one could not be handed over
SMS_FAILED_MESSAGE = N_(
    "De sms kon niet worden verstuurd. Probeer het over enkele minuten opnieuw."
)
MAIL_FAILED_MESSAGE = N_(
    "De e-mail kon niet worden verstuurd. Probeer het over enkele minuten opnieuw."
)


class DeliveryFailed(Exception):
    """A message was not handed over, retries included; str() is the Dutch text for the user.

    `reason` is for logs: a status, a reply code or a class name, never the message.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def masked_phone(phone: str) -> str:
    """The number a message went to, as pages and logs show it: 06-****1234."""
    return f"{phone[:2]}-****{phone[-4:]}"


def _masked_address(address: str) -> str:
    return "***@" + address.rpartition("@")[2]


def _sms_failed(to: str, reason: str) -> DeliveryFailed:
    log.warning("sms to %s not delivered: %s", masked_phone(to), reason)
    return DeliveryFailed(SMS_FAILED_MESSAGE, reason)


def _mail_failed(to: str, reason: str) -> DeliveryFailed:
    log.warning("mail to %s not delivered: %s", _masked_address(to), reason)
    return DeliveryFailed(MAIL_FAILED_MESSAGE, reason)


# --- SMS ---------------------------------------------------------------------------------


class OutboxSms:
    """Development and test SMS: one JSON line per message in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = Semaphore()

    def send(self, to: str, body: str) -> None:
        line = json.dumps({"to": to, "body": body, "sent_at": datetime.now(UTC).isoformat()})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, (line + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            raise _sms_failed(to, type(exc).__name__) from None


def _international(phone: str) -> str:
    """CM's form of a number: 00 and the country code; our stored 06… numbers are Dutch."""
    if phone.startswith("+"):
        return "00" + phone[1:]
    if phone.startswith("00"):
        return phone
    if phone.startswith("0"):
        return "0031" + phone[1:]
    raise ValueError("not a national (0…) or international (+… or 00…) number")


class CmSms:
    """SMS through CM.com's Business Messaging API (JSON over HTTPS).

    Connection errors, timeouts and 429/502/503/504 are tried again a few times: a code
    sent twice is harmless, a lost one keeps a user out. Every try carries the same
    reference, so CM can tell them apart from new messages.
    """

    def __init__(
        self, url: str, product_token: str, sender: str, timeout: float, retries: int
    ) -> None:
        self.url = url
        self.product_token = product_token
        self.sender = sender
        self.timeout = timeout
        retry = Retry(
            total=retries,
            allowed_methods=frozenset({"POST"}),
            status_forcelist=(429, 502, 503, 504),
            backoff_factor=0.25,
            # a long Retry-After would hold the user's login longer than the timeouts allow
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.mount("http://", HTTPAdapter(max_retries=retry))

    def send(self, to: str, body: str) -> None:
        reference = uuid.uuid4().hex  # CM allows 1-32 alphanumeric characters
        message = {
            "allowedChannels": ["SMS"],
            "from": self.sender,
            "to": [{"number": _international(to)}],
            "body": {"type": "auto", "content": body},
            "reference": reference,
        }
        payload = {
            "messages": {"authentication": {"productToken": self.product_token}, "msg": [message]}
        }
        try:
            response = self.session.post(
                self.url,
                json=payload,
                headers={"X-CM-PRODUCTTOKEN": self.product_token, "Accept": "application/json"},
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _sms_failed(to, type(exc).__name__) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise _sms_failed(to, f"HTTP {response.status_code}")
        messages = answer.get("messages") or []
        accepted = (
            response.status_code == 200
            and answer.get("errorCode") == 0
            and all(isinstance(m, dict) and m.get("messageErrorCode") == 0 for m in messages)
        )
        if not accepted:
            # CM's `details` may quote the number: log its codes only
            raise _sms_failed(
                to, f"HTTP {response.status_code}, errorCode {answer.get('errorCode')}"
            )


# --- e-mail ------------------------------------------------------------------------------


def _message(sender: str, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    # the sender's domain, not make_msgid's default: that looks up this host's name
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "overdracht.invalid"
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


class MaildirMail:
    """Development and test e-mail: one file per message in a Maildir (Python's mailbox)."""

    def __init__(self, path: Path, sender: str = config.DEFAULTS["OVERDRACHT_MAIL_FROM"]) -> None:
        self.path = path
        self.sender = sender

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        message = _message(self.sender, to, subject, text, html)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Maildir writes in tmp/ and renames into new/: a reader never sees half a mail
            mailbox.Maildir(self.path, create=True).add(message)
        except OSError as exc:
            raise _mail_failed(to, type(exc).__name__) from None


def _smtp_failure(exc: OSError) -> tuple[bool, str]:
    """Whether one more try may help, and the reason to log (codes, not the server's text)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500, f"SMTP {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return all(400 <= code < 500 for code in codes), f"SMTP {codes}"
    temporary = isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
        exc, smtplib.SMTPException
    )  # a refused, reset or timed-out connection
    return temporary, type(exc).__name__


class SmtpMail:
    """E-mail through an SMTP server (STARTTLS and login when configured).

    A dropped connection or a temporary (4xx) reply is tried once more; a permanent (5xx)
    reply is not.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        starttls: bool,
        sender: str,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.sender = sender
        self.timeout = timeout

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        message = _message(self.sender, to, subject, text, html)
        for attempt in (1, 2):
            try:
                self._hand_over(message)
                return
            except OSError as exc:  # smtplib's errors are OSErrors too
                temporary, reason = _smtp_failure(exc)
            if not temporary or attempt == 2:
                break
            log.info("mail to %s: %s, trying once more", _masked_address(to), reason)
            time.sleep(0.5)
        raise _mail_failed(to, reason)

    def _hand_over(self, message: EmailMessage) -> None:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
        finally:
            # the message is accepted once send_message returns: a failing QUIT changes nothing
            with contextlib.suppress(OSError):
                smtp.quit()
            smtp.close()


# --- selection ---------------------------------------------------------------------------


def sms_from_config() -> OutboxSms | CmSms:
    """The SMS adapter OVERDRACHT_SMS_PROVIDER names; production refuses the outbox."""
    provider = config.get("OVERDRACHT_SMS_PROVIDER").strip().lower()
    if provider == "cm":
        url = config.get("OVERDRACHT_SMS_CM_URL")
        if config.is_production() and not url.startswith("https://"):
            raise RuntimeError("OVERDRACHT_SMS_CM_URL must be https:// in production")
        return CmSms(
            url,
            config.get("OVERDRACHT_SMS_CM_PRODUCT_TOKEN"),
            config.get("OVERDRACHT_SMS_SENDER"),
            timeout=float(config.get("OVERDRACHT_SMS_TIMEOUT_SECONDS")),
            retries=config.get_int("OVERDRACHT_SMS_RETRIES"),
        )
    if provider != "outbox":
        raise RuntimeError(f"OVERDRACHT_SMS_PROVIDER must be 'outbox' or 'cm', not {provider!r}")
    if config.is_production():
        # codes in a file are for development and tests; production needs a real gateway
        raise RuntimeError("the SMS outbox is refused in production: set OVERDRACHT_SMS_PROVIDER")
    return OutboxSms(Path(config.get("OVERDRACHT_SMS_OUTBOX")))


def mail_from_config() -> MaildirMail | SmtpMail:
    """The e-mail adapter OVERDRACHT_MAIL_PROVIDER names; production refuses the outbox."""
    provider = config.get("OVERDRACHT_MAIL_PROVIDER").strip().lower()
    sender = config.get("OVERDRACHT_MAIL_FROM")
    if provider == "smtp":
        if not config.get("OVERDRACHT_SMTP_HOST"):
            raise RuntimeError("OVERDRACHT_SMTP_HOST is not set")
        starttls = config.get_bool("OVERDRACHT_SMTP_STARTTLS")
        if config.is_production() and config.get("OVERDRACHT_SMTP_USERNAME") and not starttls:
            raise RuntimeError("an SMTP login without STARTTLS is refused in production")
        return SmtpMail(
            config.get("OVERDRACHT_SMTP_HOST"),
            config.get_int("OVERDRACHT_SMTP_PORT"),
            config.get("OVERDRACHT_SMTP_USERNAME"),
            config.get("OVERDRACHT_SMTP_PASSWORD"),
            starttls,
            sender,
            timeout=float(config.get("OVERDRACHT_SMTP_TIMEOUT_SECONDS")),
        )
    if provider != "outbox":
        raise RuntimeError(f"OVERDRACHT_MAIL_PROVIDER must be 'outbox' or 'smtp', not {provider!r}")
    if config.is_production():
        # activation links in a directory are for development and tests
        raise RuntimeError("the mail outbox is refused in production: set OVERDRACHT_MAIL_PROVIDER")
    return MaildirMail(Path(config.get("OVERDRACHT_MAIL_OUTBOX")), sender)


class SmsSender(DependencyProvider):
    """Injects the configured SMS adapter: `send(to, body)`."""

    def setup(self) -> None:
        self.backend = sms_from_config()

    def get_dependency(self, worker_ctx: Any) -> OutboxSms | CmSms:
        return self.backend


class MailSender(DependencyProvider):
    """Injects the configured e-mail adapter: `send(to, subject, text, html=None)`."""

    def setup(self) -> None:
        self.backend = mail_from_config()

    def get_dependency(self, worker_ctx: Any) -> MaildirMail | SmtpMail:
        return self.backend
