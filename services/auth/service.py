"""Auth: passwords, the SMS second factor, sessions, and the signed principal."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import math
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from eventlet import tpool
from sqlalchemy.dialects.postgresql import insert as pg_insert

from overdracht import clock, config
from overdracht.contracts import (
    ENROLLING,
    N_,
    PROVIDER_LOCKED,
    PROVIDER_LOGGED_IN,
    PROVIDER_LOGGED_OUT,
    PROVIDER_LOGIN_FAILED,
    PROVIDER_PASSWORD_CHANGED,
    InvalidInput,
    OverdrachtError,
    Principal,
    Throttled,
    Unauthenticated,
    Unavailable,
    make_event,
    sign_principal,
)
from overdracht.db import Database
from overdracht.entrypoints import rpc
from overdracht.identity import CLIENTS, GATEWAY, Identity
from services.auth import onboarding, second_factor, totp
from services.auth.accounts import (
    MAX_PASSWORD,
    check_password,
    hasher,
    normalize_username,
    provider_context,
    verify_password,
)
from services.auth.delivery import DeliveryFailed, MailSender, SmsSender, masked_phone
from services.auth.models import (
    Activation,
    LoginChallenge,
    LoginThrottle,
    Outbox,
    Provider,
    RecoveryCode,
    Session,
)
from services.auth.onboarding import (
    WRONG_CODE,
    actor_of,
    digest,
    end_logins,
    new_code,
    provider_object,
    public_url,
    sms_body,
    too_soon,
)
from services.auth.sealing import CONFIRMED, Sealing

MAX_USERNAME = 64
#: how long an activation link that ended (used, replaced or expired) is kept, so that
#: following it says why it no longer works
ACTIVATION_KEPT_DAYS = 30
#: the one answer for an unknown username, a wrong password and a locked account alike
LOGIN_FAILED_MESSAGE = N_("Onjuiste gebruikersnaam of wachtwoord.")
#: the challenge is spent (used, expired, out of attempts or resends): start again
CODE_FAILED_MESSAGE = N_("De code is onjuist of verlopen. Log opnieuw in.")
#: a challenge's code can be sent again this often ("Code opnieuw sturen")
MAX_RESENDS = 3
HOUR = timedelta(hours=1)
# verifying against this when the username is unknown keeps both paths equally slow
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

log = logging.getLogger(__name__)

NOTICE_SUBJECT = "Nieuw document op Overdracht"


def _new_documents_notice(name: str) -> str:
    """The new-document e-mail: no client data at all, only that something waits."""
    return (
        f"Beste {name},\n\nOp Overdracht is een nieuw document geplaatst voor een cliënt "
        "met wie u een behandelrelatie heeft. Log in om het te bekijken; op uw startpagina "
        f"staat de cliënt gemarkeerd.\n\n{public_url()}/overzicht\n\n"
        "Over dezelfde cliënt krijgt u hoogstens één zo'n bericht per uur.\n\n"
        "Met vriendelijke groet,\nOverdracht\n"
    )


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Unauthenticated(CODE_FAILED_MESSAGE) from exc


def _now() -> datetime:
    return clock.now()


def _minutes(seconds: int) -> int:
    """How long to wait, in whole minutes (at least one)."""
    return max(1, math.ceil(seconds / 60))


def _throttle_keys(access_point: Any) -> list[tuple[str, int]]:
    """The buckets a login attempt from this address counts in: (key, failures per hour).

    The address itself and its network: a /24 for IPv4, a /64 for IPv6 (what one
    subscriber usually gets). An IPv4 address in IPv6 form counts as IPv4.
    """
    point = access_point if isinstance(access_point, dict) else {}
    per_address = config.get_int("OVERDRACHT_LOGIN_THROTTLE_PER_ADDRESS")
    per_network = config.get_int("OVERDRACHT_LOGIN_THROTTLE_PER_NETWORK")
    try:
        address = ipaddress.ip_address(str(point.get("ip") or ""))
    except ValueError:  # no address known: all such attempts share one bucket
        return [("ip:unknown", per_network)]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return [(f"ip:{address}", per_address), (f"net:{network}", per_network)]


def _throttled(wait: int) -> Throttled:
    """Too many failed logins from her address or network: wait seconds more."""
    if _minutes(wait) == 1:
        return Throttled(
            "Te veel mislukte inlogpogingen vanaf uw adres of netwerk. "
            "Probeer het over 1 minuut opnieuw.",
            "too_many_attempts",
            wait,
        )
    return Throttled(
        "Te veel mislukte inlogpogingen vanaf uw adres of netwerk. "
        "Probeer het over %(minutes)s minuten opnieuw.",
        "too_many_attempts",
        wait,
        params={"minutes": _minutes(wait)},
    )


def _locked(wait: int) -> Throttled:
    """Her account is locked after too many failures: wait seconds more."""
    if _minutes(wait) == 1:
        return Throttled(
            "Uw account is tijdelijk geblokkeerd na te veel mislukte pogingen. "
            "Probeer het over 1 minuut opnieuw.",
            "account_locked",
            wait,
        )
    return Throttled(
        "Uw account is tijdelijk geblokkeerd na te veel mislukte pogingen. "
        "Probeer het over %(minutes)s minuten opnieuw.",
        "account_locked",
        wait,
        params={"minutes": _minutes(wait)},
    )


# the modules, not their classes, are imported: `nameko run` would take any class with
# entrypoints it finds here for a service of its own
class AuthService(onboarding.Onboarding, second_factor.SecondFactor):
    name = "auth"

    db = Database("auth", Outbox)
    sms = SmsSender()
    mail = MailSender()
    identity = Identity()
    sealer = Sealing()

    # Only the gateway logs people in: each call carries a token signed with its own key.

    @rpc
    def start_login(self, caller: str, username: str, password: str, access_point: dict) -> dict:
        """Check the password; on success send an SMS code and return a challenge id.

        Refused with 429 (Throttled) while the address or its network has used up its
        failed attempts; otherwise an unknown username, a wrong password and a locked
        account get the same answer after the same argon2 verification.
        """
        self.identity.caller(caller, GATEWAY)
        username = normalize_username(username)
        if not username or not isinstance(password, str) or not password:
            raise InvalidInput("Vul gebruikersnaam en wachtwoord in.", "missing_credentials")
        keys = _throttle_keys(access_point)
        self._reserve_attempt(keys)
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            # no such account can exist: refuse alike, and keep the log's fields bounded
            self.db.record(
                _failed(
                    {"type": "anonymous", "username": username[:MAX_USERNAME]},
                    access_point,
                    "too_long",
                ),
                confirm=False,
            )
            raise Unauthenticated(LOGIN_FAILED_MESSAGE, "login_failed")
        # the slow hash runs before any row is locked, so parallel attempts on a real
        # account take no longer than on an unknown one; a locked account's too, and an
        # account without a password (invited, reset) is checked against the dummy
        with self.db.read() as session:
            known = session.scalar(sa.select(Provider).where(Provider.username == username))
        ok = verify_password((known and known.password_hash) or _DUMMY_HASH, password)
        now = _now()
        with self.db.transaction() as tx:
            provider = known and tx.session.get(Provider, known.id, with_for_update=True)
            actor = actor_of(provider, username)
            if provider is None or not ok or not provider.may_log_in(now):
                reason = _refusal_reason(provider, now)
                tx.emit(_failed(actor, access_point, reason))
                if reason == "wrong_password":
                    self._count_failure(tx, provider, access_point, now)
                challenge = None
            else:
                # her authenticator app, if she set one up; else a code by SMS
                method = "totp" if provider.totp_secret else "sms"
                code = new_code()
                ttl = config.get_int("OVERDRACHT_SMS_CODE_TTL_SECONDS")
                challenge = LoginChallenge(
                    provider_id=provider.id,
                    code_hash=digest(code if method == "sms" else secrets.token_hex(16)),
                    method=method,
                    created_at=now,
                    sent_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
                tx.session.add(challenge)
                tx.session.flush()
                _give_back_attempt(tx, keys, now)
                phone = provider.phone
        if challenge is None:
            raise Unauthenticated(LOGIN_FAILED_MESSAGE, "login_failed")
        if method == "totp":
            return {"challenge": str(challenge.id), "method": method, "sent_to": None}
        self._send_code(challenge.id, phone, code)
        return {"challenge": str(challenge.id), "method": method, "sent_to": masked_phone(phone)}

    @rpc
    def verify_login(self, caller: str, challenge: str, code: str, access_point: dict) -> dict:
        """Exchange a challenge and its SMS code for a new session token.

        A wrong code may be typed again until OVERDRACHT_SMS_CODE_ATTEMPTS are spent
        (`wrong_code`); then, or when the challenge expired, `code_failed`: log in again.
        """
        self.identity.caller(caller, GATEWAY)
        keys = _throttle_keys(access_point)
        self._reserve_attempt(keys)
        challenge_id = _uuid(challenge)
        code = str(code or "").strip()
        with self.db.transaction() as tx:
            pending = tx.session.get(LoginChallenge, challenge_id, with_for_update=True)
            if pending is None:
                tx.emit(_failed({"type": "anonymous"}, access_point, "unknown_challenge"))
                token, refusal = None, Unauthenticated(CODE_FAILED_MESSAGE, "code_failed")
            else:
                provider = tx.session.get(Provider, pending.provider_id, with_for_update=True)
                token, refusal = self._check_code(tx, pending, provider, code, access_point)
                if token is not None:
                    _give_back_attempt(tx, keys, _now())
        if token is None:
            raise refusal
        return {"token": token}

    @rpc
    def resend_code(self, caller: str, challenge: str, access_point: dict) -> dict:
        """Send a live challenge a new code ("Code opnieuw sturen"); the old one stops working.

        Not before OVERDRACHT_SMS_RESEND_SECONDS after the last (429 with how long to wait),
        at most MAX_RESENDS times; the mistakes already made still count.
        """
        self.identity.caller(caller, GATEWAY)
        challenge_id = _uuid(challenge)
        now = _now()
        refusal: OverdrachtError | None = None
        with self.db.transaction() as tx:
            pending = tx.session.get(LoginChallenge, challenge_id, with_for_update=True)
            provider = pending and tx.session.get(Provider, pending.provider_id)
            if pending is None or not _usable(pending, provider, now):
                refusal = Unauthenticated(CODE_FAILED_MESSAGE, "code_failed")
            elif pending.method != "sms":
                refusal = InvalidInput(
                    "Deze code komt uit uw authenticator-app, niet per sms.", "no_sms"
                )
            elif pending.resends >= MAX_RESENDS:
                refusal = Unauthenticated(
                    "De code is al vaak opnieuw gestuurd. Log opnieuw in.", "code_failed"
                )
            elif (refusal := too_soon(pending.sent_at or pending.created_at, now)) is None:
                code = new_code()
                ttl = config.get_int("OVERDRACHT_SMS_CODE_TTL_SECONDS")
                pending.code_hash = digest(code)
                pending.sent_at = now
                pending.resends += 1
                pending.expires_at = now + timedelta(seconds=ttl)
                phone = provider.phone
        if refusal is not None:
            raise refusal
        self._send_code(challenge_id, phone, code)
        return {"challenge": str(challenge_id), "method": "sms", "sent_to": masked_phone(phone)}

    @rpc
    def change_password(
        self, principal: str, current_password: str, new_password: str, access_point: dict
    ) -> dict:
        """A provider sets a new password; every other session of hers ends, this one stays.

        The current password is checked like a login's (a wrong one counts towards a lock,
        and a locked account checks none), the new one like a registration's.
        """
        who = self.identity(principal)
        now = _now()
        with self.db.read() as session:
            provider = session.get(Provider, _uuid(who.provider_id))
            current = session.get(Session, _uuid(who.session_id))
        if provider is None or current is None or not _live(current, now):
            raise Unauthenticated("Uw sessie is verlopen. Log opnieuw in.", "session_expired")
        if provider.is_locked(now):
            wait = math.ceil((provider.locked_until - now).total_seconds())
            raise _locked(wait)
        if not isinstance(current_password, str) or not current_password:
            raise InvalidInput("Vul uw huidige wachtwoord in.", "missing_current_password")
        ok = len(current_password) <= MAX_PASSWORD and verify_password(
            provider.password_hash, current_password
        )
        if ok:
            new_password = new_password if isinstance(new_password, str) else ""
            if new_password == current_password:
                raise InvalidInput("Kies een ander wachtwoord dan uw huidige.", "same_password")
            # zxcvbn takes up to a few tenths of a second: off the eventlet hub, like argon2
            tpool.execute(
                check_password,
                new_password,
                provider_context(provider),
            )
            new_hash = tpool.execute(hasher.hash, new_password)
        with self.db.transaction() as tx:
            provider = tx.session.get(Provider, provider.id, with_for_update=True)
            actor = _principal(provider, current).actor()
            if not ok:
                tx.emit(_failed(actor, access_point, "wrong_current_password"))
                self._count_failure(tx, provider, access_point, now)
                ended = None
            else:
                provider.password_hash = new_hash
                provider.failed_logins = 0
                ended = end_logins(tx, provider, now, keep=current.id)
                tx.emit(
                    make_event(
                        PROVIDER_PASSWORD_CHANGED,
                        actor=actor,
                        access_point=access_point,
                        object=provider_object(provider),
                        detail={"sessions_ended": ended},
                    )
                )
        if ended is None:
            raise InvalidInput("Uw huidige wachtwoord klopt niet.", "wrong_current_password")
        return {"sessions_ended": ended}

    @rpc
    def authenticate(self, caller: str, token: str) -> dict:
        """Turn a session token into a freshly signed principal and the provider's profile."""
        self.identity.caller(caller, GATEWAY)
        if not isinstance(token, str) or not token:
            raise Unauthenticated("Niet ingelogd.")
        now = _now()
        with self.db.transaction() as tx:
            session = tx.session.scalar(
                sa.select(Session).where(Session.token_hash == digest(token))
            )
            if session is None or not _live(session, now):
                raise Unauthenticated("Uw sessie is verlopen. Log opnieuw in.", "session_expired")
            # a lock stops guessing her password, not the session she already has: else
            # whoever knows her username could end it with ten wrong passwords
            provider = tx.session.get(Provider, session.provider_id)
            if provider is None or provider.deactivated_at is not None:
                raise Unauthenticated("Uw sessie is beëindigd. Log opnieuw in.", "session_ended")
            session.last_seen_at = now
            enrolling = session.must_enrol and provider.totp_secret is None
            principal = _principal(provider, session, enrolling)
            idle_end = now + timedelta(minutes=config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES"))
            ends = min(idle_end, session.expires_at)
        return {
            "principal": sign_principal(principal, config.private_key("principal")),
            "profile": {**provider.profile(), "must_enrol_totp": enrolling},
            # for the page's "blijf ingelogd": how long this session lasts without another
            # request, and whether another request would make it last longer
            "session": {
                "seconds_left": int((ends - now).total_seconds()),
                "renewable": idle_end < session.expires_at,
            },
        }

    @rpc
    def logout(self, caller: str, token: str, access_point: dict) -> None:
        """End the session; idempotent."""
        self.identity.caller(caller, GATEWAY)
        if not isinstance(token, str) or not token:
            return
        with self.db.transaction() as tx:
            session = tx.session.scalar(
                sa.select(Session).where(Session.token_hash == digest(token))
            )
            if session is None or session.ended_at is not None:
                return
            session.ended_at = _now()
            provider = tx.session.get(Provider, session.provider_id)
            tx.emit(
                make_event(
                    PROVIDER_LOGGED_OUT,
                    actor=_principal(provider, session).actor(),
                    access_point=access_point,
                )
            )

    # Clients asks for the new-document notice: a call signed with its own key.

    @rpc
    def notify_new_documents(self, caller: str, provider_ids: list[str]) -> dict:
        """E-mail each of these providers that something new waits for her on Overdracht.

        Clients decides who and how often (at most once an hour per client); the mail
        holds no client data, only a link. A failed send is logged and skipped: the
        document is placed, and Mijn cliënten marks it new whether the mail arrives or not.
        """
        self.identity.caller(caller, CLIENTS)
        ids = []
        for value in provider_ids if isinstance(provider_ids, list) else []:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                ids.append(uuid.UUID(str(value)))
        with self.db.read() as session:
            recipients = session.execute(
                sa.select(Provider.email, Provider.full_name).where(
                    Provider.id.in_(ids[:500]),
                    Provider.activated_at.is_not(None),
                    Provider.deactivated_at.is_(None),
                )
            ).all()
        sent = 0
        for email, name in recipients:
            try:
                self.mail.send(email, NOTICE_SUBJECT, _new_documents_notice(name))
                sent += 1
            except DeliveryFailed as exc:
                log.warning("new-document notice not sent: %s", exc.reason)
        return {"sent": sent, "failed": len(recipients) - sent}

    # Retention clears what can no longer be used: a call signed with the system key.

    @rpc
    def purge_expired(self, system: str) -> dict:
        """Delete ended and expired sessions and login challenges, activation links that
        ended ACTIVATION_KEPT_DAYS ago, and spent recovery codes; close provider lists
        left waiting (onboarding.LIST_OPEN_DAYS). Returns counts."""
        self.identity.system(system)
        now = _now()
        idle = timedelta(minutes=config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES"))
        ended = now - timedelta(days=ACTIVATION_KEPT_DAYS)
        with self.db.transaction() as tx:
            sessions = tx.session.execute(
                sa.delete(Session).where(
                    sa.or_(
                        Session.ended_at.is_not(None),
                        Session.expires_at <= now,
                        Session.last_seen_at <= now - idle,
                    )
                )
            ).rowcount
            challenges = tx.session.execute(
                sa.delete(LoginChallenge).where(LoginChallenge.expires_at <= now)
            ).rowcount
            # a bucket whose time has come is as good as none
            throttles = tx.session.execute(
                sa.delete(LoginThrottle).where(LoginThrottle.tat <= now)
            ).rowcount
            # a link that ended tells whoever follows it why, for a while; then it is
            # unknown like any other (only its token's hash was kept)
            activations = tx.session.execute(
                sa.delete(Activation).where(
                    sa.or_(
                        Activation.used_at <= ended,
                        Activation.superseded_at <= ended,
                        Activation.expires_at <= ended,
                    )
                )
            ).rowcount
            # a spent code is refused just as well without its row
            recovery_codes = tx.session.execute(
                sa.delete(RecoveryCode).where(RecoveryCode.used_at.is_not(None))
            ).rowcount
            lists, rows = self._expire_waiting_lists(tx, now)
        return {
            "sessions": sessions,
            "login_challenges": challenges,
            "login_throttles": throttles,
            "activations": activations,
            "recovery_codes": recovery_codes,
            "provider_lists": lists,
            "provider_list_rows": rows,
        }

    def _send_code(self, challenge_id: uuid.UUID, phone: str, code: str) -> None:
        """Send a challenge's code; if it cannot go, the challenge is spent: no login waits
        on a code that never came."""
        try:
            self.sms.send(phone, sms_body(code))
        except DeliveryFailed as exc:
            with self.db.transaction() as tx:
                tx.session.execute(
                    sa.update(LoginChallenge)
                    .where(LoginChallenge.id == challenge_id)
                    .values(used_at=_now())
                )
            raise Unavailable(exc.message, "sms_failed") from exc

    def _reserve_attempt(self, keys: list[tuple[str, int]]) -> None:
        """Count an attempt in every bucket before it is checked, or refuse it (Throttled).

        Counted first, in one short transaction, so that attempts in parallel cannot all
        slip under the limit; a login that then succeeds gives its attempt back.
        """
        now = _now()
        wait = 0
        with self.db.transaction() as tx:
            for key, per_hour in keys:
                interval = HOUR / per_hour
                counted = tx.session.execute(
                    pg_insert(LoginThrottle)
                    .values(key=key, tat=now + interval)
                    .on_conflict_do_update(
                        index_elements=[LoginThrottle.key],
                        set_={"tat": sa.func.greatest(LoginThrottle.tat, now) + interval},
                        where=LoginThrottle.tat <= now + HOUR - interval,
                    )
                    .returning(LoginThrottle.tat)
                ).first()
                if counted is None:
                    tat = tx.session.get(LoginThrottle, key).tat
                    wait = max(wait, math.ceil((tat - (now + HOUR - interval)).total_seconds()))
            if wait:  # raised inside: rolled back, so counted in none of them
                raise _throttled(wait)

    def _check_code(
        self, tx, pending, provider, code, access_point
    ) -> tuple[str | None, Unauthenticated | None]:
        """Single use, time limited, a few attempts: a token, or why not."""
        now = _now()
        actor = actor_of(provider)
        if not _usable(pending, provider, now):
            tx.emit(_failed(actor, access_point, "code_expired"))
            return None, Unauthenticated(CODE_FAILED_MESSAGE, "code_failed")
        factor = self._second_factor(tx, pending, provider, code, now)
        if factor is None:
            pending.attempts += 1
            tx.emit(_failed(actor, access_point, "wrong_code"))
            self._count_failure(tx, provider, access_point, now)
            if not _usable(pending, provider, now):
                return None, Unauthenticated(CODE_FAILED_MESSAGE, "code_failed")
            left = config.get_int("OVERDRACHT_SMS_CODE_ATTEMPTS") - pending.attempts
            return None, Unauthenticated(WRONG_CODE, "wrong_code", params={"left": left})
        pending.used_at = now
        provider.failed_logins = 0
        provider.lock_count = 0  # the next lock is the first again
        token = secrets.token_urlsafe(32)
        session = Session(
            token_hash=digest(token),
            provider_id=provider.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=config.get_int("OVERDRACHT_SESSION_ABSOLUTE_HOURS")),
            must_enrol=provider.totp_secret is None
            and second_factor.totp_required(tx.session, provider.role),
        )
        tx.session.add(session)
        tx.session.flush()
        tx.emit(
            make_event(
                PROVIDER_LOGGED_IN,
                actor=_principal(provider, session).actor(),
                access_point=access_point,
                detail={"second_factor": factor, "must_enrol": session.must_enrol},
            )
        )
        return token, None

    def _second_factor(self, tx, pending, provider, code: str, now: datetime) -> str | None:
        """Which second factor this code proves ("sms", "totp", "recovery_code"), if any.

        An app's code counts once (a replay of its time step is refused), a recovery
        code once.
        """
        if pending.method == "sms":
            return "sms" if hmac.compare_digest(pending.code_hash, digest(code)) else None
        if provider.totp_secret is None:  # the app was taken away (a reset) meanwhile
            return None
        if totp.looks_like_recovery_code(code):
            spent = tx.session.execute(
                sa.update(RecoveryCode)
                .where(
                    RecoveryCode.provider_id == provider.id,
                    RecoveryCode.code_hash == totp.recovery_hash(code),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
            ).rowcount
            return "recovery_code" if spent else None
        secret = second_factor.opened(self.sealer, provider, CONFIRMED)
        step = totp.matching_step(secret, code, now, provider.totp_last_step)
        if step is None:
            return None
        provider.totp_last_step = step
        if not self.sealer.is_current(provider.totp_secret):  # sealed by a key being retired
            provider.totp_secret = self.sealer.seal(secret, provider.id, CONFIRMED)
        return "totp"

    def _count_failure(self, tx, provider: Provider, access_point: dict, now: datetime) -> None:
        """One more failure in a row; the LOCK_AFTERth locks the account.

        The first lock lasts OVERDRACHT_LOGIN_LOCK_MINUTES, each next one (without a login
        in between) twice as long, up to OVERDRACHT_LOGIN_LOCK_MAX_MINUTES. Attempts during
        a lock are not counted: nobody can lengthen the lock that is running, only earn the
        next one, with as many failures again, after it ends.
        """
        if provider.is_locked(now):
            return
        provider.failed_logins += 1
        if provider.failed_logins < config.get_int("OVERDRACHT_LOGIN_LOCK_AFTER"):
            return
        first = config.get_int("OVERDRACHT_LOGIN_LOCK_MINUTES")
        longest = config.get_int("OVERDRACHT_LOGIN_LOCK_MAX_MINUTES")
        minutes = min(first * 2 ** min(provider.lock_count, 32), longest)
        failures = provider.failed_logins
        provider.locked_at = now
        provider.locked_until = now + timedelta(minutes=minutes)
        provider.lock_count += 1
        provider.failed_logins = 0
        tx.emit(
            make_event(
                PROVIDER_LOCKED,
                actor={"type": "system"},
                access_point=access_point,
                object=provider_object(provider),
                detail={
                    "failed_logins": failures,
                    "minutes": minutes,
                    "lock": provider.lock_count,
                    "locked_until": provider.locked_until.isoformat(),
                },
            )
        )


def _usable(pending: LoginChallenge, provider: Provider | None, now: datetime) -> bool:
    """A challenge still takes a code: unused, unexpired, attempts left, account usable."""
    return (
        provider is not None
        and pending.used_at is None
        and pending.expires_at > now
        and pending.attempts < config.get_int("OVERDRACHT_SMS_CODE_ATTEMPTS")
        and provider.may_log_in(now)
    )


def _refusal_reason(provider: Provider | None, now: datetime) -> str:
    """Why a login was refused, for the audit log only (the user reads the one answer)."""
    if provider is None:
        return "unknown_user"
    if provider.deactivated_at is not None:
        return "deactivated"
    if provider.password_hash is None:
        return "not_activated"
    return "locked" if provider.is_locked(now) else "wrong_password"


def _live(session: Session, now: datetime) -> bool:
    idle = timedelta(minutes=config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES"))
    return (
        session.ended_at is None and session.expires_at > now and session.last_seen_at + idle > now
    )


def _give_back_attempt(tx, keys: list[tuple[str, int]], now: datetime) -> None:
    """A login that succeeded is no failure: take its reserved attempt out of the buckets."""
    for key, per_hour in keys:
        interval = HOUR / per_hour
        # a bucket left empty goes: no row is the same as a full allowance
        tx.session.execute(
            sa.delete(LoginThrottle).where(
                LoginThrottle.key == key, LoginThrottle.tat - interval <= now
            )
        )
        tx.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(tat=LoginThrottle.tat - interval)
        )


def _failed(actor: dict, access_point: dict, reason: str) -> dict:
    return make_event(
        PROVIDER_LOGIN_FAILED,
        actor=actor,
        access_point=access_point,
        outcome="failure",
        detail={"reason": reason},
    )


def _principal(provider: Provider, session: Session, enrolling: bool = False) -> Principal:
    """Her principal; while she must set up the app first, with no role but ENROLLING."""
    return Principal(
        provider_id=str(provider.id),
        username=provider.username,
        full_name=provider.full_name,
        role=ENROLLING if enrolling else provider.role,
        profession=provider.profession,
        region=provider.region,
        session_id=str(session.id),
    )
