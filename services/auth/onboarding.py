"""A region goes live: provider lists, invitations, activation, and the helpdesk's actions.

Mixed into AuthService (services/auth/service.py), whose dependencies (db, identity, sms,
mail) these entrypoints use. Who may call what:

- a coördinator (her principal) submits her region's list and reads its accounts;
- a beheerder (her principal), or the operator's CLI (a token signed with the operator's
  key), reviews lists, registers, resets, unlocks and deactivates accounts;
- the gateway (its own signed token) lets someone with an activation link choose her
  password, before there is any principal.

An invitation is sent inside the transaction that makes it: when the e-mail cannot be
handed over, nothing of it is kept (no account without an invitation, no reset that only
took her password away).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from eventlet import tpool

from overdracht import clock, config
from overdracht.contracts import (
    BEHEERDER,
    COORDINATOR,
    N_,
    OPERATOR_ACTOR,
    PROVIDER_ACTIVATED,
    PROVIDER_DEACTIVATED,
    PROVIDER_INVITED,
    PROVIDER_LIST_EXPIRED,
    PROVIDER_LIST_REGISTERED,
    PROVIDER_LIST_REJECTED,
    PROVIDER_LIST_SUBMITTED,
    PROVIDER_PASSWORD_RESET,
    PROVIDER_UNLOCKED,
    SYSTEM_ACTOR,
    ZORGVERLENER,
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    OverdrachtError,
    Principal,
    Throttled,
    Unauthenticated,
    Unavailable,
    make_event,
)
from overdracht.db import Transaction
from overdracht.entrypoints import rpc
from overdracht.identity import GATEWAY, OPERATOR
from services.auth import lists
from services.auth.accounts import (
    check_password,
    hasher,
    normalize_username,
    provider_context,
    register,
)
from services.auth.delivery import (
    MAIL_FAILED_MESSAGE,
    SMS_FAILED_MESSAGE,
    DeliveryFailed,
    masked_phone,
)
from services.auth.models import (
    ACCOUNT_STATUSES,
    Activation,
    LoginChallenge,
    Provider,
    ProviderList,
    ProviderListRow,
    RecoveryCode,
    Session,
)

#: the roles a beheerder may give; an auditor or another beheerder only the operator (CLI)
BEHEERDER_MAY_REGISTER = (ZORGVERLENER, COORDINATOR)
#: a list's registration stops taking rows this long before its caller stops waiting (or
#: twice its slowest row so far, if longer), and leaves the rest to the next call
ROW_MARGIN_SECONDS = 2.0
LIST_CLOSED = N_("Deze lijst is al afgehandeld.")
#: days a submitted list waits for a beheerder: then the sweep closes it as expired, and
#: the rows of people who got no account go (a coördinator may submit it again)
LIST_OPEN_DAYS = 30
#: the states of a list that takes no more registering
CLOSED = ("rejected", "expired")
#: SMS codes one activation link may have sent
MAX_ACTIVATION_CODES = 5
#: why a link no longer works, as its owner reads it (with the value `hours`)
LINK_GONE = {
    "unknown": N_(
        "Deze activeringslink is ongeldig. Controleer of u de hele link uit de e-mail "
        "heeft gebruikt, of vraag de helpdesk om een nieuwe."
    ),
    "used": N_(
        "Deze activeringslink is al gebruikt. Log in met uw gebruikersnaam en wachtwoord, "
        "of vraag de helpdesk om een nieuwe link als u uw wachtwoord niet meer weet."
    ),
    "expired": N_(
        "Deze activeringslink is verlopen: een link is %(hours)s uur geldig. "
        "Vraag de helpdesk om een nieuwe."
    ),
    "superseded": N_(
        "Er is u een nieuwere activeringslink gestuurd. Gebruik de link uit de laatste e-mail."
    ),
}
#: with the value `left`: the attempts left
WRONG_CODE = N_("De code is onjuist. U kunt het nog %(left)s keer proberen.")
CODE_SPENT = N_("De code is onjuist of verlopen. Laat een nieuwe code sturen.")
#: what the user reads when her e-mail or SMS could not go (delivery's text, by which)
NOT_SENT = {
    SMS_FAILED_MESSAGE: N_(
        "De sms kon niet worden verstuurd. Probeer het over enkele minuten opnieuw. "
        "Er is niets gewijzigd."
    ),
    MAIL_FAILED_MESSAGE: N_(
        "De e-mail kon niet worden verstuurd. Probeer het over enkele minuten opnieuw. "
        "Er is niets gewijzigd."
    ),
}


def digest(value: str) -> str:
    """How a token or code is kept: its SHA-256 (they are random and short-lived)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def sms_body(code: str) -> str:
    return f"Uw Overdracht-code is {code}. Deel deze code met niemand."


def provider_object(provider: Provider) -> dict:
    return {"type": "provider", "id": str(provider.id), "username": provider.username}


def too_soon(sent_at: datetime | None, now: datetime) -> Throttled | None:
    """Refusal of a new code within OVERDRACHT_SMS_RESEND_SECONDS of the last one."""
    cooldown = timedelta(seconds=config.get_int("OVERDRACHT_SMS_RESEND_SECONDS"))
    if sent_at is None or sent_at + cooldown <= now:
        return None
    wait = math.ceil((sent_at + cooldown - now).total_seconds())
    return Throttled(
        "U kunt over %(wait)s seconden een nieuwe code laten sturen.",
        "resend_too_soon",
        wait,
        params={"wait": wait},
    )


def account_event(name: str, actor: dict, access_point: Any, provider: Provider, **detail):
    """An event about one account, by whoever acted on it."""
    return make_event(
        name,
        actor=actor,
        access_point=access_point,
        object=provider_object(provider),
        detail=detail,
    )


def public_url() -> str:
    return config.get("OVERDRACHT_PUBLIC_URL") or f"http://{config.get('OVERDRACHT_GATEWAY_BIND')}"


def _activation_hours() -> int:
    return config.get_int("OVERDRACHT_ACTIVATION_HOURS")


def _list_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("Deze lijst bestaat niet.") from None


def _account(provider: Provider, now: datetime) -> dict[str, Any]:
    return {
        **provider.profile(),
        "id": str(provider.id),
        "organisation": provider.organisation,
        "agb_code": provider.agb_code,
        "status": provider.status(now),
        "created_at": provider.created_at.isoformat(),
        "activated_at": provider.activated_at and provider.activated_at.isoformat(),
        "locked_until": provider.locked_until.isoformat() if provider.is_locked(now) else None,
    }


def _list_summary(row: ProviderList, counts: dict[uuid.UUID, tuple[int, int]]) -> dict:
    total, registered = counts.get(row.id, (0, 0))
    return {
        "id": str(row.id),
        "region": row.region,
        "filename": row.filename,
        "submitted_at": row.submitted_at.isoformat(),
        "status": row.status,
        "row_count": total,
        "registered": registered,
    }


def _mail_text(provider: Provider, link: str, purpose: str) -> tuple[str, str]:
    hours = _activation_hours()
    if purpose == "reset":
        subject = "Nieuwe activeringslink voor Overdracht"
        opening = (
            "De helpdesk heeft uw account op Overdracht opnieuw ingesteld. Uw oude wachtwoord "
            "werkt niet meer en u bent overal uitgelogd."
        )
    else:
        subject = "Uw account voor Overdracht"
        opening = (
            "Er is een account voor u aangemaakt op Overdracht, waarmee zorgverleners in de "
            "geboortezorg documenten van cliënten veilig aan elkaar overdragen."
        )
    text = (
        f"Beste {provider.full_name},\n\n{opening}\n\n"
        f"Uw gebruikersnaam: {provider.username}\n\n"
        "Open de link hieronder om uw account te activeren. U krijgt dan een sms-code op "
        f"{masked_phone(provider.phone)} en kiest zelf een wachtwoord. De link is {hours} uur "
        f"geldig en werkt één keer.\n\n{link}\n\n"
        "Heeft u dit niet verwacht? Neem dan contact op met de helpdesk van Overdracht en "
        "gebruik de link niet.\n\nMet vriendelijke groet,\nBeheer Overdracht\n"
    )
    return subject, text


class Onboarding:
    """The entrypoints; AuthService supplies db, identity, sms and mail."""

    db: Any
    identity: Any
    sms: Any
    mail: Any

    # --- who calls ----------------------------------------------------------------------

    def _admin(self, credential: Any) -> tuple[dict[str, Any], Principal | None]:
        """The operator's CLI or a beheerder: her actor (and principal), else refused."""
        # not the operator's signed token: then it must be a beheerder's principal
        with contextlib.suppress(Unauthenticated):
            self.identity.caller(credential, OPERATOR)
            return OPERATOR_ACTOR, None
        who = self.identity(credential)
        if who.role != BEHEERDER:
            raise Forbidden("Alleen een beheerder mag dit.", "role")
        return who.actor(), who

    def _coordinator(self, principal: Any) -> Principal:
        who = self.identity(principal)
        if who.role != COORDINATOR:
            raise Forbidden("Alleen een coördinator mag dit.", "role")
        return who

    # --- the coördinator ----------------------------------------------------------------

    @rpc
    def submit_provider_list(
        self, principal: str, filename: str, content: str, access_point: dict
    ) -> dict:
        """Keep each valid row of her region's list; report every other by its line."""
        who = self._coordinator(principal)
        return self._take_list(
            who.actor(), who.region, who.provider_id, filename, content, access_point
        )

    @rpc
    def region_accounts(self, principal: str) -> dict:
        """Every care provider of her region and its status, submitted rows included."""
        who = self._coordinator(principal)
        now = clock.now()
        with self.db.read() as session:
            providers = session.scalars(
                sa.select(Provider).where(
                    Provider.region == who.region, Provider.role == ZORGVERLENER
                )
            ).all()
            waiting = session.scalars(
                sa.select(ProviderListRow)
                .join(ProviderList)
                .where(
                    ProviderList.region == who.region,
                    ProviderList.status == "submitted",
                    ProviderListRow.provider_id.is_(None),
                )
            ).all()
        accounts = [
            {
                "full_name": p.full_name,
                "email": p.email,
                "profession": p.profession,
                "organisation": p.organisation,
                "username": p.username,
                "status": p.status(now),
            }
            for p in providers
        ] + [
            {
                "full_name": r.full_name,
                "email": r.email,
                "profession": r.profession,
                "organisation": r.organisation,
                "username": None,
                "status": "submitted",
            }
            for r in waiting
        ]
        accounts.sort(key=lambda a: (a["full_name"].lower(), a["email"]))
        return {"region": who.region, "accounts": accounts}

    # --- the beheerder and the operator -------------------------------------------------

    @rpc
    def provider_lists(self, credential: str, status: str | None = None) -> dict:
        self._admin(credential)
        with self.db.read() as session:
            query = sa.select(ProviderList).order_by(ProviderList.submitted_at.desc())
            if status:
                query = query.where(ProviderList.status == status)
            found = session.scalars(query).all()
            counts = {
                list_id: (total, registered)
                for list_id, total, registered in session.execute(
                    sa.select(
                        ProviderListRow.list_id,
                        sa.func.count(),
                        sa.func.count(ProviderListRow.provider_id),
                    ).group_by(ProviderListRow.list_id)
                )
            }
        return {"lists": [_list_summary(found_list, counts) for found_list in found]}

    @rpc
    def provider_list(self, credential: str, list_id: str) -> dict:
        self._admin(credential)
        now = clock.now()
        with self.db.read() as session:
            found = session.get(ProviderList, _list_id(list_id))
            if found is None:
                raise NotFound("Deze lijst bestaat niet.")
            rows = session.execute(
                sa.select(ProviderListRow, Provider)
                .outerjoin(Provider, Provider.id == ProviderListRow.provider_id)
                .where(ProviderListRow.list_id == found.id)
                .order_by(ProviderListRow.line)
            ).all()
            submitter = found.submitted_by and session.get(Provider, found.submitted_by)
        return {
            **_list_summary(found, {found.id: (len(rows), sum(1 for _, p in rows if p))}),
            "submitted_by": submitter.full_name if submitter else None,
            "rows": [
                {
                    "line": row.line,
                    "full_name": row.full_name,
                    "email": row.email,
                    "phone": row.phone,
                    "profession": row.profession,
                    "organisation": row.organisation,
                    "agb_code": row.agb_code,
                    "username": provider.username if provider else None,
                    "status": provider.status(now) if provider else "submitted",
                    "problem": row.problem,
                }
                for row, provider in rows
            ],
        }

    @rpc
    def register_provider_list(
        self, credential: str, list_id: str, access_point: dict | None = None
    ) -> dict:
        """Register and invite every row not yet registered, each on its own.

        A row whose e-mail cannot be sent stays submitted, with the reason, to be tried
        again; the list counts as registered once every row is. Rows are taken while the
        caller waits; what is left (`remaining`) the next call takes.
        """
        actor, _ = self._admin(credential)
        return self._register_rows(actor, _list_id(list_id), access_point or {})

    @rpc
    def reject_provider_list(
        self, credential: str, list_id: str, access_point: dict | None = None
    ) -> dict:
        """Refuse a submitted list. Its rows not registered are deleted: the names,
        addresses and numbers of people who get no account are not kept. The list stays,
        as rejected, for the record; accounts already registered from it stay too."""
        actor, _ = self._admin(credential)
        wanted = _list_id(list_id)
        with self.db.transaction() as tx:
            found = tx.session.get(ProviderList, wanted, with_for_update=True)
            if found is None:
                raise NotFound("Deze lijst bestaat niet.")
            if found.status != "submitted":
                raise Conflict(LIST_CLOSED, "list_closed")
            discarded = _close_list(
                tx, found, "rejected", PROVIDER_LIST_REJECTED, actor, access_point
            )
        return {"list_id": str(wanted), "status": "rejected", "discarded": discarded}

    def _expire_waiting_lists(self, tx: Transaction, now: datetime) -> tuple[int, int]:
        """Close the lists nobody registered or rejected within LIST_OPEN_DAYS, as a
        rejection would (the sweep's part, in its transaction); returns how many lists,
        and how many rows of people without an account were deleted with them."""
        waiting = tx.session.scalars(
            sa.select(ProviderList)
            .where(
                ProviderList.status == "submitted",
                ProviderList.submitted_at <= now - timedelta(days=LIST_OPEN_DAYS),
            )
            .with_for_update(skip_locked=True)  # one a beheerder is closing now is hers
        ).all()
        discarded = sum(
            _close_list(tx, found, "expired", PROVIDER_LIST_EXPIRED, SYSTEM_ACTOR, {})
            for found in waiting
        )
        return len(waiting), discarded

    @rpc
    def import_provider_list(self, operator: str, region: str, filename: str, content: str) -> dict:
        """The CLI's `provider import`: a region's list taken and registered in one step."""
        self.identity.caller(operator, OPERATOR)
        region = " ".join(str(region or "").split())
        if not 1 <= len(region) <= 100:
            raise InvalidInput("Regio ontbreekt.", "invalid_region")
        taken = self._take_list(OPERATOR_ACTOR, region, None, filename, content, {})
        if taken["list_id"] is None:
            return {**taken, "registered": [], "failed": [], "remaining": 0}
        return {**taken, **self._register_rows(OPERATOR_ACTOR, uuid.UUID(taken["list_id"]), {})}

    @rpc
    def invite_provider(
        self, credential: str, data: dict, access_point: dict | None = None
    ) -> dict:
        """Register one account without a password and send her the activation link."""
        actor, who = self._admin(credential)
        data = data if isinstance(data, dict) else {}
        if who is not None and data.get("role") not in BEHEERDER_MAY_REGISTER:
            raise Forbidden(
                "Een beheerder registreert zorgverleners en coördinatoren; andere rollen "
                "registreert de operator met de opdrachtregel."
            )
        now = clock.now()
        try:
            with self.db.transaction() as tx:
                provider, event = register(tx.session, data, actor, now, invited=True)
                tx.emit(event)
                self._invite(tx, provider, "invite", actor, access_point or {}, now)
                created = {"id": str(provider.id), "username": provider.username}
        except DeliveryFailed as exc:
            raise not_sent(exc, "mail_failed") from exc
        return created

    @rpc
    def accounts(self, credential: str, filters: dict | None = None) -> dict:
        """Every account, filtered by region, role, status and a part of name or username."""
        self._admin(credential)
        filters = filters if isinstance(filters, dict) else {}
        now = clock.now()
        query = sa.select(Provider).order_by(Provider.region, Provider.full_name)
        if filters.get("region"):
            query = query.where(Provider.region == str(filters["region"]))
        if filters.get("role"):
            query = query.where(Provider.role == str(filters["role"]))
        if filters.get("q"):
            text = str(filters["q"]).strip()
            query = query.where(
                sa.or_(
                    Provider.full_name.icontains(text, autoescape=True),
                    Provider.username.icontains(text, autoescape=True),
                )
            )
        status = filters.get("status")
        if status and status not in ACCOUNT_STATUSES:
            raise InvalidInput("Onbekende status.", "invalid_status")
        with self.db.read() as session:
            found = [_account(p, now) for p in session.scalars(query)]
        return {"accounts": [a for a in found if not status or a["status"] == status]}

    @rpc
    def unlock(self, credential: str, username: str, access_point: dict | None = None) -> dict:
        """End an account's lock and start its count afresh."""
        actor, who = self._admin(credential)
        now = clock.now()
        with self.db.transaction() as tx:
            provider = self._account_for_update(tx, username, acting=who)
            was_locked = provider.is_locked(now)
            provider.clear_lock()
            tx.emit(
                account_event(
                    PROVIDER_UNLOCKED, actor, access_point, provider, was_locked=was_locked
                )
            )
        return {"username": provider.username, "was_locked": was_locked}

    @rpc
    def reset_provider(
        self, credential: str, username: str, access_point: dict | None = None
    ) -> dict:
        """The helpdesk's reset: her password and sessions end, a new activation link goes out."""
        actor, who = self._admin(credential)
        now = clock.now()
        try:
            with self.db.transaction() as tx:
                provider = self._account_for_update(tx, username, acting=who)
                if provider.deactivated_at is not None:
                    raise Conflict("Dit account is gedeactiveerd.", "account_deactivated")
                provider.password_hash = None
                # she may have lost the phone with her app on it: SMS again, until she
                # sets up the app anew
                provider.totp_secret = provider.totp_pending = provider.totp_last_step = None
                tx.session.execute(
                    sa.delete(RecoveryCode).where(RecoveryCode.provider_id == provider.id)
                )
                provider.clear_lock()
                ended = end_logins(tx, provider, now)
                tx.emit(
                    account_event(
                        PROVIDER_PASSWORD_RESET, actor, access_point, provider, sessions_ended=ended
                    )
                )
                self._invite(tx, provider, "reset", actor, access_point or {}, now)
        except DeliveryFailed as exc:
            raise not_sent(exc, "mail_failed") from exc
        return {"username": provider.username, "sessions_ended": ended}

    @rpc
    def deactivate_provider(
        self, credential: str, username: str, access_point: dict | None = None
    ) -> dict:
        """No more logins, no session left, no link that works; the row stays for the record."""
        actor, who = self._admin(credential)
        now = clock.now()
        with self.db.transaction() as tx:
            provider = self._account_for_update(tx, username, acting=who)
            if provider.deactivated_at is not None:
                return {"username": provider.username, "sessions_ended": 0}
            provider.deactivated_at = now
            ended = end_logins(tx, provider, now)
            _supersede(tx, provider, now)
            tx.emit(
                account_event(
                    PROVIDER_DEACTIVATED, actor, access_point, provider, sessions_ended=ended
                )
            )
        return {"username": provider.username, "sessions_ended": ended}

    # --- activation: the gateway, for whoever holds the link ----------------------------

    @rpc
    def activation(self, caller: str, token: str) -> dict:
        """Whose link this is (username, masked number), or Gone saying why it does not work."""
        self.identity.caller(caller, GATEWAY)
        with self.db.read() as session:
            activation, provider = _find_activation(session, token, clock.now())
        return {
            "username": provider.username,
            "full_name": provider.full_name,
            "sent_to": masked_phone(provider.phone),
            "code_sent": activation.code_hash is not None,
        }

    @rpc
    def send_activation_code(self, caller: str, token: str, access_point: dict) -> dict:
        """Send the link's owner an SMS code (again: after the resend cooldown)."""
        self.identity.caller(caller, GATEWAY)
        now = clock.now()
        refusal: OverdrachtError | None = None
        with self.db.transaction() as tx:
            activation, provider = _find_activation(tx.session, token, now, lock=True)
            if activation.codes_sent >= MAX_ACTIVATION_CODES:
                refusal = Gone(
                    "Er zijn al te veel codes voor deze link gestuurd. Vraag de helpdesk om "
                    "een nieuwe activeringslink.",
                    "too_many_codes",
                )
            elif (refusal := too_soon(activation.code_sent_at, now)) is None:
                code = new_code()
                ttl = timedelta(seconds=config.get_int("OVERDRACHT_SMS_CODE_TTL_SECONDS"))
                previous = (
                    activation.code_hash,
                    activation.code_sent_at,
                    activation.code_expires_at,
                    activation.code_attempts,
                )
                activation.code_hash = digest(code)
                activation.code_sent_at = now
                activation.code_expires_at = now + ttl
                activation.code_attempts = 0
                activation.codes_sent += 1
                phone = provider.phone
        if refusal is not None:
            raise refusal
        try:
            self.sms.send(phone, sms_body(code))
        except DeliveryFailed as exc:
            self._undo_code(activation.id, digest(code), previous)
            raise not_sent(exc, "sms_failed") from exc
        return {"sent_to": masked_phone(phone)}

    @rpc
    def activate(
        self, caller: str, token: str, code: str, password: str, access_point: dict
    ) -> dict:
        """The code from the SMS and her own password: the account is hers, the link spent."""
        self.identity.caller(caller, GATEWAY)
        now = clock.now()
        with self.db.read() as session:
            _, provider = _find_activation(session, token, now)
        password = password if isinstance(password, str) else ""
        # zxcvbn and argon2 take tenths of a second: off the eventlet hub
        tpool.execute(check_password, password, provider_context(provider))
        password_hash = tpool.execute(hasher.hash, password)
        code = str(code or "").strip()
        refusal: OverdrachtError | None = None
        with self.db.transaction() as tx:
            activation, provider = _find_activation(tx.session, token, now, lock=True)
            attempts = config.get_int("OVERDRACHT_SMS_CODE_ATTEMPTS")
            if (
                activation.code_hash is None
                or activation.code_expires_at <= now
                or activation.code_attempts >= attempts
            ):
                refusal = InvalidInput(CODE_SPENT, "code_failed")
            elif not hmac.compare_digest(activation.code_hash, digest(code)):
                activation.code_attempts += 1
                left = attempts - activation.code_attempts
                refusal = (
                    InvalidInput(WRONG_CODE, "wrong_code", params={"left": left})
                    if left
                    else InvalidInput(CODE_SPENT, "code_failed")
                )
            else:
                activation.used_at = now
                end_logins(tx, provider, now)  # none should be left after a reset: belt and braces
                provider.password_hash = password_hash
                provider.activated_at = provider.activated_at or now
                provider.failed_logins = 0
                tx.emit(
                    account_event(
                        PROVIDER_ACTIVATED,
                        actor_of(provider),
                        access_point,
                        provider,
                        purpose=activation.purpose,
                    )
                )
        if refusal is not None:
            raise refusal
        return {"username": provider.username}

    # --- the steps they share -----------------------------------------------------------

    def _take_list(
        self,
        actor: dict,
        region: str,
        submitted_by: str | None,
        filename: Any,
        content: Any,
        access_point: dict,
    ) -> dict:
        rows, errors = lists.parse(content if isinstance(content, str | bytes) else "")
        filename = " ".join(str(filename or "lijst.csv").split())[:200]
        now = clock.now()
        with self.db.transaction() as tx:
            known = {
                email.lower()
                for email in tx.session.scalars(
                    sa.select(Provider.email).where(Provider.deactivated_at.is_(None))
                )
            } | {
                email.lower()
                for email in tx.session.scalars(
                    sa.select(ProviderListRow.email)
                    .join(ProviderList)
                    .where(
                        ProviderList.status == "submitted",
                        ProviderListRow.provider_id.is_(None),
                    )
                )
            }
            kept = []
            for row in rows:
                if row["email"].lower() in known:
                    errors.append(
                        {
                            "line": row["line"],
                            "message": "Er is al een account of ingediende aanmelding met dit "
                            "e-mailadres.",
                        }
                    )
                else:
                    kept.append(row)
            errors.sort(key=lambda e: e["line"])
            list_id = None
            if kept:
                provider_list = ProviderList(
                    region=region,
                    filename=filename,
                    submitted_by=submitted_by and uuid.UUID(submitted_by),
                    submitted_at=now,
                    status="submitted",
                )
                tx.session.add(provider_list)
                tx.session.flush()
                tx.session.add_all(ProviderListRow(list_id=provider_list.id, **r) for r in kept)
                list_id = str(provider_list.id)
            tx.emit(
                make_event(
                    PROVIDER_LIST_SUBMITTED,
                    actor=actor,
                    access_point=access_point,
                    object={"type": "provider_list", "id": list_id},
                    detail={"region": region, "accepted": len(kept), "refused": len(errors)},
                )
            )
        return {"list_id": list_id, "accepted": len(kept), "errors": errors}

    def _register_rows(self, actor: dict, list_id: uuid.UUID, access_point: dict) -> dict:
        with self.db.read() as session:
            found = session.get(ProviderList, list_id)
            if found is None:
                raise NotFound("Deze lijst bestaat niet.")
            if found.status in CLOSED:
                raise Conflict(LIST_CLOSED, "list_closed")
            # rows not tried yet first: a call that runs out of time leaves the ones that
            # failed before (a mail server away) for last, not the new ones
            waiting = session.scalars(
                sa.select(ProviderListRow.id)
                .where(ProviderListRow.list_id == list_id, ProviderListRow.provider_id.is_(None))
                .order_by(ProviderListRow.problem.is_not(None), ProviderListRow.line)
            ).all()
        registered, failed = [], []
        slowest, taken = 0.0, 0
        for row_id in waiting:
            # the rest waits for the next call rather than outlast the caller's patience
            if self.db.time_left() < max(2 * slowest, ROW_MARGIN_SECONDS):
                break
            taken += 1
            started = time.monotonic()
            problem = None
            now = clock.now()
            try:
                with self.db.transaction() as tx:
                    row = tx.session.get(ProviderListRow, row_id, with_for_update=True)
                    if row is None or row.provider_id is not None:  # closed, or registered
                        continue  # meanwhile
                    data = {
                        "full_name": row.full_name,
                        "email": row.email,
                        "phone": row.phone,
                        "profession": row.profession,
                        "organisation": row.organisation,
                        "agb_code": row.agb_code,
                        "region": found.region,
                        "role": ZORGVERLENER,
                    }
                    provider, event = register(tx.session, data, actor, now, invited=True)
                    tx.emit(event)
                    self._invite(tx, provider, "invite", actor, access_point, now)
                    row.provider_id = provider.id
                    row.problem = None
                    registered.append({"line": row.line, "username": provider.username})
            except DeliveryFailed:
                problem = N_("De e-mail kon niet worden verstuurd; probeer het later opnieuw.")
            except (InvalidInput, Conflict) as exc:
                problem = exc.message
            if problem is not None:
                with self.db.transaction() as tx:
                    row = tx.session.get(ProviderListRow, row_id)
                    if row is not None:  # not closed meanwhile
                        row.problem = problem[:300]
                        failed.append({"line": row.line, "message": problem})
            slowest = max(slowest, time.monotonic() - started)
        remaining = len(waiting) - taken
        with self.db.transaction() as tx:
            found = tx.session.get(ProviderList, list_id, with_for_update=True)
            left = tx.session.scalar(
                sa.select(sa.func.count()).where(
                    ProviderListRow.list_id == list_id, ProviderListRow.provider_id.is_(None)
                )
            )
            if not left and found.status == "submitted":  # not closed meanwhile
                found.status = "registered"
            found.reviewed_at = clock.now()
            tx.emit(
                make_event(
                    PROVIDER_LIST_REGISTERED,
                    actor=actor,
                    access_point=access_point,
                    object={"type": "provider_list", "id": str(list_id)},
                    detail={
                        "region": found.region,
                        "registered": len(registered),
                        "failed": len(failed),
                        "remaining": remaining,
                    },
                )
            )
        return {"registered": registered, "failed": failed, "remaining": remaining}

    def _invite(
        self,
        tx: Any,
        provider: Provider,
        purpose: str,
        actor: dict,
        access_point: dict,
        now: datetime,
    ) -> None:
        """A new activation link (older ones stop working), mailed before the commit."""
        _supersede(tx, provider, now)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(hours=_activation_hours())
        tx.session.add(
            Activation(
                provider_id=provider.id,
                token_hash=digest(token),
                purpose=purpose,
                created_at=now,
                expires_at=expires,
            )
        )
        tx.session.flush()
        tx.emit(
            account_event(
                PROVIDER_INVITED,
                actor,
                access_point,
                provider,
                purpose=purpose,
                expires_at=expires.isoformat(),
            )
        )
        subject, text = _mail_text(provider, f"{public_url()}/activeren?token={token}", purpose)
        self.mail.send(provider.email, subject, text)

    def _account_for_update(
        self, tx: Any, username: Any, acting: Principal | None = None
    ) -> Provider:
        """The account's row, locked for this transaction; a beheerder (acting) may act on
        zorgverleners and coördinatoren only, and never on herself: auditors and beheerders
        are the operator's (separation of duties)."""
        provider = tx.session.scalar(
            sa.select(Provider)
            .where(Provider.username == normalize_username(username))
            .with_for_update()
        )
        if provider is None:
            raise NotFound("Er is geen account met deze gebruikersnaam.", "unknown_user")
        if acting is not None and str(provider.id) == acting.provider_id:
            raise Forbidden("Dit kunt u niet met uw eigen account doen.", "own_account")
        if acting is not None and provider.role not in BEHEERDER_MAY_REGISTER:
            raise Forbidden(
                "Accounts van auditors en beheerders beheert de operator met de opdrachtregel.",
                "operator_only",
            )
        return provider

    def _undo_code(self, activation_id: uuid.UUID, code_hash: str, previous: tuple) -> None:
        """The SMS did not go: the code it would have carried never counts as sent."""
        with self.db.transaction() as tx:
            activation = tx.session.get(Activation, activation_id, with_for_update=True)
            if activation is not None and activation.code_hash == code_hash:
                (
                    activation.code_hash,
                    activation.code_sent_at,
                    activation.code_expires_at,
                    activation.code_attempts,
                ) = previous
                activation.codes_sent -= 1


def not_sent(exc: DeliveryFailed, code: str) -> Unavailable:
    """What the user reads when her e-mail or SMS could not go: nothing was kept of it."""
    channel = SMS_FAILED_MESSAGE if code == "sms_failed" else MAIL_FAILED_MESSAGE
    return Unavailable(NOT_SENT.get(exc.message, NOT_SENT[channel]), code)


def _find_activation(
    session: Any, token: Any, now: datetime, lock: bool = False
) -> tuple[Activation, Provider]:
    """The link's live activation and its account, or Gone saying why not.

    With lock, both rows are locked, the account's first: the order reset and deactivate
    lock them in too, so the two never wait for each other.
    """
    query = sa.select(Activation).where(Activation.token_hash == digest(str(token or "")[:100]))
    activation = session.scalar(query)
    provider = activation and session.get(Provider, activation.provider_id, with_for_update=lock)
    if lock and activation is not None:
        session.refresh(activation, with_for_update=True)
    reason = None
    if activation is None or provider is None or provider.deactivated_at is not None:
        reason = "unknown"
    elif activation.used_at is not None:
        reason = "used"
    elif activation.superseded_at is not None:
        reason = "superseded"
    elif activation.expires_at <= now:
        reason = "expired"
    if reason is not None:
        raise Gone(
            LINK_GONE[reason],
            "activation_" + reason,
            params={"hours": _activation_hours()} if reason == "expired" else None,
        )
    return activation, provider


def _supersede(tx: Any, provider: Provider, now: datetime) -> None:
    tx.session.execute(
        sa.update(Activation)
        .where(
            Activation.provider_id == provider.id,
            Activation.used_at.is_(None),
            Activation.superseded_at.is_(None),
        )
        .values(superseded_at=now)
    )


def end_logins(tx: Any, provider: Provider, now: datetime, keep: Any = None) -> int:
    """End her sessions (but keep) and spend every login still waiting for its code, which
    was started with a password that may no longer be hers; returns the sessions ended."""
    tx.session.execute(
        sa.update(LoginChallenge)
        .where(LoginChallenge.provider_id == provider.id, LoginChallenge.used_at.is_(None))
        .values(used_at=now)
    )
    return tx.session.execute(
        sa.update(Session)
        .where(
            Session.provider_id == provider.id,
            Session.ended_at.is_(None),
            Session.id != keep if keep is not None else sa.true(),
        )
        .values(ended_at=now)
    ).rowcount


def actor_of(provider: Provider | None, username: str = "") -> dict:
    """The envelope's actor for an account (anonymous: a username nobody has)."""
    if provider is None:
        return {"type": "anonymous", "username": username}
    return {
        "type": "provider",
        "id": str(provider.id),
        "username": provider.username,
        "role": provider.role,
        "region": provider.region,
    }


def _close_list(
    tx: Transaction,
    found: ProviderList,
    status: str,
    event: str,
    actor: dict,
    access_point: dict | None,
) -> int:
    """Close a submitted list (locked by the caller) for good: its rows not registered are
    deleted, with the names, addresses and numbers of people who get no account, and the
    event says how many. Returns that number."""
    discarded = tx.session.execute(
        sa.delete(ProviderListRow).where(
            ProviderListRow.list_id == found.id, ProviderListRow.provider_id.is_(None)
        )
    ).rowcount
    found.status = status
    found.reviewed_at = clock.now()
    tx.emit(
        make_event(
            event,
            actor=actor,
            access_point=access_point or {},
            object={"type": "provider_list", "id": str(found.id)},
            detail={"region": found.region, "discarded": discarded},
        )
    )
    return discarded
