"""Auth: passwords, the SMS second factor, sessions, and the signed principal."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool

from overdracht import config
from overdracht.contracts import (
    PROVIDER_LOCKED,
    PROVIDER_LOGGED_IN,
    PROVIDER_LOGGED_OUT,
    PROVIDER_LOGIN_FAILED,
    InvalidInput,
    Principal,
    Unauthenticated,
    make_event,
    sign_principal,
)
from overdracht.db import Database
from overdracht.entrypoints import rpc
from overdracht.identity import GATEWAY, Identity
from services.auth.accounts import MAX_PASSWORD, hasher, normalize_username
from services.auth.dependencies import SmsSender
from services.auth.models import LoginChallenge, Outbox, Provider, Session

MAX_USERNAME = 64
LOGIN_FAILED_MESSAGE = "Onjuiste gebruikersnaam of wachtwoord."
CODE_FAILED_MESSAGE = "De code is onjuist of verlopen. Log opnieuw in."
# verifying against this when the username is unknown keeps both paths equally slow
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Unauthenticated(CODE_FAILED_MESSAGE) from exc


def _now() -> datetime:
    return datetime.now(UTC)


class AuthService:
    name = "auth"

    db = Database("auth", Outbox)
    sms = SmsSender()
    identity = Identity()

    # Only the gateway logs people in: each call carries a token signed with its own key.

    @rpc
    def start_login(self, caller: str, username: str, password: str, access_point: dict) -> dict:
        """Check the password; on success send an SMS code and return a challenge id."""
        self.identity.caller(caller, GATEWAY)
        username = normalize_username(username)
        if not username or not isinstance(password, str) or not password:
            raise InvalidInput("Vul gebruikersnaam en wachtwoord in.", "missing_credentials")
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
        # account take no longer than on an unknown one
        with self.db.read() as session:
            known = session.scalar(sa.select(Provider).where(Provider.username == username))
        ok = _verify_password(known.password_hash if known else _DUMMY_HASH, password)
        with self.db.transaction() as tx:
            provider = known and tx.session.get(Provider, known.id, with_for_update=True)
            actor = _actor(provider, username)
            if provider is None or not ok or provider.locked_at is not None:
                reason = "unknown_user" if provider is None else "wrong_password"
                if provider is not None and provider.locked_at is not None:
                    reason = "locked"
                tx.emit(_failed(actor, access_point, reason))
                if provider is not None and reason == "wrong_password":
                    self._count_failure(tx, provider, access_point)
                challenge = None
            else:
                code = f"{secrets.randbelow(10**6):06d}"
                ttl = config.get_int("OVERDRACHT_SMS_CODE_TTL_SECONDS")
                challenge = LoginChallenge(
                    provider_id=provider.id,
                    code_hash=_digest(code),
                    created_at=_now(),
                    expires_at=_now() + timedelta(seconds=ttl),
                )
                tx.session.add(challenge)
                tx.session.flush()
                phone = provider.phone
        if challenge is None:
            raise Unauthenticated(LOGIN_FAILED_MESSAGE, "login_failed")
        self.sms.send(phone, f"Uw Overdracht-code is {code}. Deel deze code met niemand.")
        return {"challenge": str(challenge.id)}

    @rpc
    def verify_login(self, caller: str, challenge: str, code: str, access_point: dict) -> dict:
        """Exchange a challenge and its SMS code for a new session token."""
        self.identity.caller(caller, GATEWAY)
        challenge_id = _uuid(challenge)
        code = str(code or "").strip()
        with self.db.transaction() as tx:
            pending = tx.session.get(LoginChallenge, challenge_id, with_for_update=True)
            if pending is None:
                tx.emit(_failed({"type": "anonymous"}, access_point, "unknown_challenge"))
                token = None
            else:
                provider = tx.session.get(Provider, pending.provider_id, with_for_update=True)
                token = self._check_code(tx, pending, provider, code, access_point)
        if token is None:
            raise Unauthenticated(CODE_FAILED_MESSAGE, "code_failed")
        return {"token": token}

    @rpc
    def authenticate(self, caller: str, token: str) -> dict:
        """Turn a session token into a freshly signed principal and the provider's profile."""
        self.identity.caller(caller, GATEWAY)
        if not isinstance(token, str) or not token:
            raise Unauthenticated("Niet ingelogd.")
        now = _now()
        idle = timedelta(minutes=config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES"))
        with self.db.transaction() as tx:
            session = tx.session.scalar(
                sa.select(Session).where(Session.token_hash == _digest(token))
            )
            if (
                session is None
                or session.ended_at is not None
                or session.expires_at <= now
                or session.last_seen_at + idle <= now
            ):
                raise Unauthenticated("Uw sessie is verlopen. Log opnieuw in.", "session_expired")
            provider = tx.session.get(Provider, session.provider_id)
            if provider is None or provider.locked_at is not None:
                raise Unauthenticated("Uw sessie is beëindigd. Log opnieuw in.", "session_ended")
            session.last_seen_at = now
            principal = _principal(provider, session)
        return {
            "principal": sign_principal(principal, config.private_key("principal")),
            "profile": provider.profile(),
        }

    @rpc
    def logout(self, caller: str, token: str, access_point: dict) -> None:
        """End the session; idempotent."""
        self.identity.caller(caller, GATEWAY)
        if not isinstance(token, str) or not token:
            return
        with self.db.transaction() as tx:
            session = tx.session.scalar(
                sa.select(Session).where(Session.token_hash == _digest(token))
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

    # Retention clears what can no longer be used: a call signed with the system key.

    @rpc
    def purge_expired(self, system: str) -> dict:
        """Delete ended and expired sessions and expired login challenges; returns counts."""
        self.identity.system(system)
        now = _now()
        idle = timedelta(minutes=config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES"))
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
        return {"sessions": sessions, "login_challenges": challenges}

    def _check_code(self, tx, pending, provider, code, access_point) -> str | None:
        """Single use, time limited, a few attempts; returns a token or None."""
        now = _now()
        actor = _actor(provider, provider.username)
        max_attempts = config.get_int("OVERDRACHT_SMS_CODE_ATTEMPTS")
        usable = (
            pending.used_at is None
            and pending.expires_at > now
            and pending.attempts < max_attempts
            and provider.locked_at is None
        )
        if not usable:
            tx.emit(_failed(actor, access_point, "code_expired"))
            return None
        if not hmac.compare_digest(pending.code_hash, _digest(code)):
            pending.attempts += 1
            tx.emit(_failed(actor, access_point, "wrong_code"))
            self._count_failure(tx, provider, access_point)
            return None
        pending.used_at = now
        provider.failed_logins = 0
        token = secrets.token_urlsafe(32)
        session = Session(
            token_hash=_digest(token),
            provider_id=provider.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=config.get_int("OVERDRACHT_SESSION_ABSOLUTE_HOURS")),
        )
        tx.session.add(session)
        tx.session.flush()
        tx.emit(
            make_event(
                PROVIDER_LOGGED_IN,
                actor=_principal(provider, session).actor(),
                access_point=access_point,
                detail={"second_factor": "sms"},
            )
        )
        return token

    def _count_failure(self, tx, provider: Provider, access_point: dict) -> None:
        provider.failed_logins += 1
        if provider.failed_logins >= config.get_int("OVERDRACHT_LOGIN_LOCK_AFTER"):
            provider.locked_at = _now()
            tx.emit(
                make_event(
                    PROVIDER_LOCKED,
                    actor={"type": "system"},
                    access_point=access_point,
                    object={
                        "type": "provider",
                        "id": str(provider.id),
                        "username": provider.username,
                    },
                    detail={"failed_logins": provider.failed_logins},
                )
            )


def _verify_password(password_hash: str, password: str) -> bool:
    # argon2 is deliberately slow: run it off the eventlet hub
    try:
        return bool(tpool.execute(hasher.verify, password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _actor(provider: Provider | None, username: str) -> dict:
    if provider is None:
        return {"type": "anonymous", "username": username}
    return {
        "type": "provider",
        "id": str(provider.id),
        "username": provider.username,
        "role": provider.role,
        "region": provider.region,
    }


def _failed(actor: dict, access_point: dict, reason: str) -> dict:
    return make_event(
        PROVIDER_LOGIN_FAILED,
        actor=actor,
        access_point=access_point,
        outcome="failure",
        detail={"reason": reason},
    )


def _principal(provider: Provider, session: Session) -> Principal:
    return Principal(
        provider_id=str(provider.id),
        username=provider.username,
        full_name=provider.full_name,
        role=provider.role,
        region=provider.region,
        session_id=str(session.id),
    )
