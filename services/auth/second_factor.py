"""The authenticator app as second factor: setting it up, and a beheerder requiring it.

Mixed into AuthService like Onboarding. A provider sets the app up from her overview page
(a QR code, then one code from the app to confirm it) and gets ten recovery codes, shown
once; from then on her logins ask the app, not an SMS. A beheerder can require the app for
a role: an account of that role without it may, after its SMS login, do nothing but set
it up (its principal has the role ENROLLING, which every service refuses).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from overdracht import clock
from overdracht.contracts import (
    N_,
    PROVIDER_TOTP_ENROLLED,
    ROLES,
    SECOND_FACTOR_POLICY_CHANGED,
    Conflict,
    Forbidden,
    InvalidInput,
    Unauthenticated,
    Unavailable,
    make_event,
)
from overdracht.entrypoints import rpc
from services.auth import totp
from services.auth.accounts import verify_password
from services.auth.delivery import DeliveryFailed
from services.auth.models import Provider, RecoveryCode, SecondFactorPolicy, Session
from services.auth.onboarding import BEHEERDER_MAY_REGISTER, account_event
from services.auth.sealing import CONFIRMED, PENDING, SealBroken, Sealer

log = logging.getLogger(__name__)

#: how long a secret offered for setting up the app stays the same
SETUP_MINUTES = 10
TOTP_UNREADABLE = N_(
    "Uw authenticator-app kan nu niet worden gecontroleerd. Neem contact op met de helpdesk."
)


def _pending(provider: Provider | None, now: datetime) -> str | None:
    """The secret being set up (sealed), unless it was offered too long ago."""
    if provider is None or provider.totp_pending is None or provider.totp_pending_at is None:
        return None
    if provider.totp_pending_at + timedelta(minutes=SETUP_MINUTES) <= now:
        return None
    return provider.totp_pending


def opened(sealer: Sealer, provider: Provider, column: str) -> str:
    """A provider's secret out of its seal; a seal that does not open refuses the request
    (nothing counted against her) and tells the operator."""
    try:
        return sealer.open(getattr(provider, column), provider.id, column)
    except SealBroken:
        log.error(
            "provider %s: the sealed %s does not open (altered, or its key is no longer in"
            " OVERDRACHT_AUTH_SEALING_KEYSET)",
            provider.id,
            column,
        )
        raise Unavailable(TOTP_UNREADABLE, "totp_unreadable") from None


def _notice(name: str) -> str:
    return (
        f"Beste {name},\n\nVoor uw account op Overdracht is zojuist een authenticator-app "
        "ingesteld. Voortaan vraagt Overdracht bij het inloggen de code uit die app in plaats "
        "van een sms.\n\nHeeft u dit niet zelf gedaan? Neem dan direct contact op met de "
        "helpdesk van Overdracht.\n\nMet vriendelijke groet,\nBeheer Overdracht\n"
    )


def totp_required(session: Any, role: str) -> bool:
    policy = session.get(SecondFactorPolicy, role)
    return bool(policy and policy.totp_required)


class SecondFactor:
    """The entrypoints; AuthService supplies db, identity, mail, _admin and _count_failure."""

    db: Any
    identity: Any
    mail: Any
    sealer: Sealer

    @rpc
    def totp_setup(self, principal: str) -> dict:
        """A secret to set the app up with: URI, QR code, text.

        The same for SETUP_MINUTES (a reload between scanning and confirming must not
        change it), then a new one: a secret someone glimpsed goes stale.
        """
        who = self.identity(principal)
        now = clock.now()
        with self.db.transaction() as tx:
            provider = tx.session.get(Provider, who.provider_id, with_for_update=True)
            if provider is None:
                raise Unauthenticated("Uw sessie is beëindigd. Log opnieuw in.", "session_ended")
            if provider.totp_secret is not None:
                raise Conflict("De authenticator-app is al ingesteld.", "totp_enabled")
            if _pending(provider, now) is None:
                secret = totp.new_secret()
                provider.totp_pending = self.sealer.seal(secret, provider.id, PENDING)
                provider.totp_pending_at = now
            else:
                secret = opened(self.sealer, provider, PENDING)
            username = provider.username
        uri = totp.provisioning_uri(secret, username)
        return {"secret": secret, "uri": uri, "qr_svg": totp.qr_svg(uri)}

    @rpc
    def totp_confirm(self, principal: str, code: str, password: str, access_point: dict) -> dict:
        """Her password and one code from the app: the app replaces the SMS from now on.

        The password, so that a session someone else got hold of cannot swap her second
        factor for theirs; an e-mail tells her it happened. Returns the ten recovery codes,
        the only time anyone sees them.
        """
        who = self.identity(principal)
        now = clock.now()
        with self.db.read() as session:
            known = session.get(Provider, who.provider_id)
        if known is None or not verify_password(known.password_hash, password):
            with self.db.transaction() as tx:
                if known is not None:
                    provider = tx.session.get(Provider, known.id, with_for_update=True)
                    self._count_failure(tx, provider, access_point, now)
            raise InvalidInput("Uw wachtwoord klopt niet.", "wrong_password")
        codes = totp.new_recovery_codes()
        with self.db.transaction() as tx:
            provider = tx.session.get(Provider, who.provider_id, with_for_update=True)
            if _pending(provider, now) is None:
                raise Conflict(
                    "Start het instellen van de authenticator-app opnieuw.", "totp_not_started"
                )
            secret = opened(self.sealer, provider, PENDING)
            step = totp.matching_step(secret, code, now, None)
            if step is None:
                raise InvalidInput(
                    "Deze code klopt niet. Typ de code die de app nu toont.", "wrong_code"
                )
            provider.totp_secret = self.sealer.seal(secret, provider.id, CONFIRMED)
            provider.totp_pending = provider.totp_pending_at = None
            provider.totp_enabled_at = now
            provider.totp_last_step = step
            tx.session.execute(
                sa.delete(RecoveryCode).where(RecoveryCode.provider_id == provider.id)
            )
            tx.session.add_all(
                RecoveryCode(provider_id=provider.id, code_hash=totp.recovery_hash(c))
                for c in codes
            )
            tx.session.execute(
                sa.update(Session)
                .where(Session.provider_id == provider.id, Session.must_enrol.is_(True))
                .values(must_enrol=False)
            )
            tx.emit(account_event(PROVIDER_TOTP_ENROLLED, who.actor(), access_point, provider))
            email, name = provider.email, provider.full_name
        # the app is set up either way; a notice that could not go is logged by the adapter
        with contextlib.suppress(DeliveryFailed):
            self.mail.send(email, "Authenticator-app ingesteld voor Overdracht", _notice(name))
        return {"recovery_codes": codes}

    @rpc
    def second_factor_policy(self, credential: str) -> dict:
        """Which roles must use the authenticator app."""
        self._admin(credential)
        with self.db.read() as session:
            required = {
                p.role: p.totp_required for p in session.scalars(sa.select(SecondFactorPolicy))
            }
        return {"totp_required": {role: required.get(role, False) for role in ROLES}}

    @rpc
    def set_second_factor_policy(
        self, credential: str, role: str, required: bool, access_point: dict | None = None
    ) -> dict:
        """Require the app for a role, or no longer; accounts without it set it up at their
        next login."""
        actor, acting = self._admin(credential)
        if role not in ROLES:
            raise InvalidInput(
                "Rol moet een van %(roles)s zijn.",
                "invalid_role",
                params={"roles": ", ".join(ROLES)},
            )
        if not isinstance(required, bool):
            raise InvalidInput("Geef aan of de app verplicht is (true of false).", "invalid_input")
        if acting is not None and not required and role not in BEHEERDER_MAY_REGISTER:
            # separation of duties: she may require the app of her own role, not lift it
            raise Forbidden(
                "Alleen de operator kan de app voor auditors en beheerders weer vrijlaten.",
                "operator_only",
            )
        with self.db.transaction() as tx:
            tx.session.execute(
                pg_insert(SecondFactorPolicy)
                .values(role=role, totp_required=required, changed_at=clock.now())
                .on_conflict_do_update(
                    index_elements=[SecondFactorPolicy.role],
                    set_={"totp_required": required, "changed_at": clock.now()},
                )
            )
            tx.emit(
                make_event(
                    SECOND_FACTOR_POLICY_CHANGED,
                    actor=actor,
                    access_point=access_point,
                    detail={"role": role, "totp_required": required},
                )
            )
        return {"role": role, "totp_required": required}
