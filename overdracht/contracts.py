"""What services agree on: roles, event envelopes, the signed principal and error types.

This is the one module every service imports. It holds no behaviour beyond building
and checking these shapes, so a service can change anything else without the others
noticing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nameko.exceptions import deserialize_to_instance

# --- roles -----------------------------------------------------------------------------

ZORGVERLENER = "zorgverlener"
COORDINATOR = "coordinator"
BEHEERDER = "beheerder"
AUDITOR = "auditor"
ROLES = (ZORGVERLENER, COORDINATOR, BEHEERDER, AUDITOR)
#: no role: the principal of a session that must set up the authenticator app first (her
#: role requires it); every service refuses it everything but that
ENROLLING = "enrolling"

# --- events ----------------------------------------------------------------------------

PROVIDER_REGISTERED = "provider.registered"
PROVIDER_LOGGED_IN = "provider.logged_in"
PROVIDER_LOGGED_OUT = "provider.logged_out"
PROVIDER_LOGIN_FAILED = "provider.login_failed"
PROVIDER_LOCKED = "provider.locked"
PROVIDER_PASSWORD_RESET = "provider.password_reset"  # noqa: S105 - an event name
PROVIDER_PASSWORD_CHANGED = "provider.password_changed"  # noqa: S105 - an event name
PROVIDER_UNLOCKED = "provider.unlocked"
#: an activation link went out by e-mail (detail: purpose invite or reset)
PROVIDER_INVITED = "provider.invited"
PROVIDER_ACTIVATED = "provider.activated"
PROVIDER_DEACTIVATED = "provider.deactivated"
PROVIDER_TOTP_ENROLLED = "provider.totp_enrolled"
#: a beheerder required the authenticator app for a role, or no longer
SECOND_FACTOR_POLICY_CHANGED = "second_factor_policy.changed"
#: a coördinator submitted her region's list; a beheerder registered it
PROVIDER_LIST_SUBMITTED = "provider_list.submitted"
PROVIDER_LIST_REGISTERED = "provider_list.registered"
PROVIDER_LIST_REJECTED = "provider_list.rejected"
PROVIDER_LIST_EXPIRED = "provider_list.expired"
CLIENT_SEARCHED = "client.searched"
CLIENT_CREATED = "client.created"
CLIENT_DELETED = "client.deleted"
#: a provider's own clients (Mijn cliënten) were shown to her; detail names them
CLIENTS_LISTED = "client.listed"
RELATIONSHIP_ESTABLISHED = "relationship.established"
DOCUMENT_UPLOADED = "document.uploaded"
DOCUMENT_LISTED = "document.listed"
DOCUMENT_DOWNLOADED = "document.downloaded"
#: how a download ended, after its `document.downloaded` (the grant): outcome is one of
#: DELIVERY_OUTCOMES, detail names the grant's event_id (`grant_event_id`)
DOCUMENT_DELIVERY = "document.delivery"
DOCUMENT_DELETED = "document.deleted"
#: a read (search, list, download) was recorded but its answer never given: the broker
#: did not confirm its event, or the service died first; detail names the read's
#: event_id (`read_event_id`). See overdracht/db.py.
READ_WITHHELD = "read.withheld"
#: a provider moved a removal date (within the same cap); detail has from and to
DOCUMENT_REMOVAL_DATE_MOVED = "document.removal_date_moved"
DOCUMENT_EXPIRED = "document.expired"
ACCESS_DENIED = "access.denied"
#: an auditor read the log (its filters, how many records) / exported it as CSV
AUDIT_READ = "audit.read"
AUDIT_EXPORTED = "audit.exported"
#: the operator purged the records past their retention (detail: through, records, before)
AUDIT_PURGED = "audit.purged"

#: Which service publishes which events; the bus topology is declared from this.
EVENT_SOURCES: dict[str, tuple[str, ...]] = {
    "auth": (
        PROVIDER_REGISTERED,
        PROVIDER_LOGGED_IN,
        PROVIDER_LOGGED_OUT,
        PROVIDER_LOGIN_FAILED,
        PROVIDER_LOCKED,
        PROVIDER_PASSWORD_RESET,
        PROVIDER_PASSWORD_CHANGED,
        PROVIDER_UNLOCKED,
        PROVIDER_INVITED,
        PROVIDER_ACTIVATED,
        PROVIDER_DEACTIVATED,
        PROVIDER_TOTP_ENROLLED,
        SECOND_FACTOR_POLICY_CHANGED,
        PROVIDER_LIST_SUBMITTED,
        PROVIDER_LIST_REGISTERED,
        PROVIDER_LIST_REJECTED,
        PROVIDER_LIST_EXPIRED,
    ),
    "clients": (
        CLIENT_SEARCHED,
        CLIENT_CREATED,
        CLIENT_DELETED,
        CLIENTS_LISTED,
        RELATIONSHIP_ESTABLISHED,
        ACCESS_DENIED,
        READ_WITHHELD,
    ),
    "documents": (
        DOCUMENT_UPLOADED,
        DOCUMENT_LISTED,
        DOCUMENT_DOWNLOADED,
        DOCUMENT_DELIVERY,
        DOCUMENT_DELETED,
        DOCUMENT_REMOVAL_DATE_MOVED,
        DOCUMENT_EXPIRED,
        ACCESS_DENIED,
        READ_WITHHELD,
    ),
}
#: What the audit service records itself, straight into its chain: reading the log.
AUDIT_OWN_EVENTS = (AUDIT_READ, AUDIT_EXPORTED, AUDIT_PURGED)
EVENT_NAMES = frozenset(
    [*(name for names in EVENT_SOURCES.values() for name in names), *AUDIT_OWN_EVENTS]
)

#: every byte went out / refused or cut off by documents / the receiving end went away
DELIVERED = "delivered"
DELIVERY_FAILED = "failed"
DELIVERY_INTERRUPTED = "interrupted"
DELIVERY_OUTCOMES = (DELIVERED, DELIVERY_FAILED, DELIVERY_INTERRUPTED)

ENVELOPE_FIELDS = (
    "event",
    "event_id",
    "occurred_at",
    "actor",
    "access_point",
    "subject",
    "object",
    "outcome",
    "detail",
)

SYSTEM_ACTOR: dict[str, Any] = {"type": "system"}
#: the operator, at the `overdracht` command line
OPERATOR_ACTOR: dict[str, Any] = {"type": "operator", "via": "cli"}


def make_event(
    name: str,
    *,
    actor: dict[str, Any],
    access_point: dict[str, Any] | None = None,
    subject: str | None = None,
    object: dict[str, Any] | None = None,  # noqa: A002 - envelope field name
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one event envelope; nothing identifying a client but her id goes in."""
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown event {name!r}")
    return {
        "event": name,
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": actor,
        "access_point": access_point or {},
        "subject": subject,
        "object": object,
        "outcome": outcome,
        "detail": detail or {},
    }


def check_envelope(payload: Any) -> dict[str, Any]:
    """Return payload if it is a well-formed envelope, else raise ValueError."""
    if not isinstance(payload, dict):
        raise ValueError("event payload is not an object")
    missing = [f for f in ENVELOPE_FIELDS if f not in payload]
    if missing:
        raise ValueError(f"event lacks {', '.join(missing)}")
    if payload["event"] not in EVENT_NAMES:
        raise ValueError(f"unknown event {payload['event']!r}")
    uuid.UUID(str(payload["event_id"]))
    occurred = datetime.fromisoformat(payload["occurred_at"])
    if occurred.tzinfo is None:
        raise ValueError("occurred_at must carry its UTC offset")
    if not isinstance(payload["actor"], dict):
        raise ValueError("actor must be an object")
    for name, value in (
        ("subject", payload["subject"]),
        ("actor.id", payload["actor"].get("id")),
        ("actor.username", payload["actor"].get("username")),
    ):
        if value is not None and (not isinstance(value, str) or len(value) > 64):
            raise ValueError(f"{name} must be a string of at most 64 characters")
    return payload


# --- principal -------------------------------------------------------------------------

#: The gateway gets a fresh principal from auth for every request, so it can be short:
#: after a logout, a reset or a deactivation the services refuse it within this time.
PRINCIPAL_TTL = timedelta(seconds=60)
_ALGORITHM = "EdDSA"
_AUDIENCE = "overdracht-services"


@dataclass(frozen=True)
class Principal:
    """Who acts: minted by auth for one session, verified by every service itself."""

    provider_id: str
    username: str
    full_name: str
    role: str
    region: str
    session_id: str
    #: a zorgverlener's (verloskundige, ...): shown beside her name on what she placed
    profession: str | None = None

    def actor(self) -> dict[str, Any]:
        """The envelope's actor for this principal."""
        return {
            "type": "provider",
            "id": self.provider_id,
            "username": self.username,
            "name": self.full_name,
            "role": self.role,
            "profession": self.profession,
            "region": self.region,
            "session_id": self.session_id,
        }


def sign_principal(
    principal: Principal, key: Ed25519PrivateKey, ttl: timedelta = PRINCIPAL_TTL
) -> str:
    """Sign a principal; only auth holds the private key."""
    now = datetime.now(UTC)
    claims = {**asdict(principal), "aud": _AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify_principal(token: Any, key: Ed25519PublicKey) -> Principal:
    """Check a signed principal's signature and expiry; raise Unauthenticated otherwise."""
    if not isinstance(token, str):
        raise Unauthenticated("geen geldige identiteit")
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], audience=_AUDIENCE)
        return Principal(**{f: claims[f] for f in Principal.__dataclass_fields__})
    except (jwt.PyJWTError, KeyError, TypeError) as exc:
        raise Unauthenticated("geen geldige identiteit") from exc


#: Calls that change data for no provider (the retention sweep) carry a token signed with
#: the system key instead: whoever can merely publish on the bus cannot make one.
_SYSTEM_AUDIENCE = "overdracht-system"


def sign_system_token(
    service: str,
    key: Ed25519PrivateKey,
    ttl: timedelta = PRINCIPAL_TTL,
    call: str | None = None,
) -> str:
    """A caller's signature for one call (`clients.delete_clients`): valid for that alone."""
    now = datetime.now(UTC)
    claims = {"sub": service, "aud": _SYSTEM_AUDIENCE, "iat": now, "exp": now + ttl}
    if call is not None:
        claims["call"] = call
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify_system_token(token: Any, key: Ed25519PublicKey, call: str | None = None) -> str:
    """Who signed token (for call, when given); raise Unauthenticated otherwise."""
    if not isinstance(token, str):
        raise Unauthenticated("geen geldige systeemidentiteit")
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], audience=_SYSTEM_AUDIENCE)
        signer = str(claims["sub"])
    except (jwt.PyJWTError, KeyError) as exc:
        raise Unauthenticated("geen geldige systeemidentiteit") from exc
    if call is not None and claims.get("call") != call:
        raise Unauthenticated("geen geldige systeemidentiteit")
    return signer


#: clients' answer to "may this provider do this with this client?" is signed with its own
#: key, so that documents acts only on a grant clients gave, whoever else answered the call
_GRANT_AUDIENCE = "overdracht-grant"
GRANT_TTL = timedelta(seconds=60)


def sign_grant(principal: Principal, client_id: str, action: str, key: Ed25519PrivateKey) -> str:
    """Clients' permission for one action by one session on one client."""
    now = datetime.now(UTC)
    claims = {
        "sub": client_id,
        "provider": principal.provider_id,
        "session": principal.session_id,
        "action": action,
        "aud": _GRANT_AUDIENCE,
        "iat": now,
        "exp": now + GRANT_TTL,
    }
    return jwt.encode(claims, key, algorithm=_ALGORITHM)


def verify_grant(
    token: Any, key: Ed25519PublicKey, principal: Principal, client_id: str, action: str
) -> None:
    """Raise Forbidden unless token is clients' grant of exactly this action."""
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], audience=_GRANT_AUDIENCE)
    except (jwt.PyJWTError, TypeError) as exc:
        raise Forbidden("U heeft geen toegang tot deze cliënt.", "no_grant") from exc
    expected = (client_id, principal.provider_id, principal.session_id, action)
    if (claims.get("sub"), claims.get("provider"), claims.get("session"), claims.get("action")) != (
        expected
    ):
        raise Forbidden("U heeft geen toegang tot deze cliënt.", "no_grant")


# --- file bodies ---------------------------------------------------------------------

#: The gateway hands documents a one-time ticket in this header (never in a URL, so no
#: access log records one) when it streams a file body in or out.
TICKET_HEADER = "X-Overdracht-Ticket"

# --- errors ----------------------------------------------------------------------------
# Raised inside a service, they cross RPC as themselves (nameko rebuilds registered types);
# each carries its one HTTP status, used by the gateway and by documents' HTTP endpoints.


def N_(text: str) -> str:
    """Mark a text a person reads for the pages' catalogue (gateway/i18n.py) where it is
    not an error's message; the gateway translates it when it shows it."""
    return text


def dutch_list(items: list[Any]) -> str:
    texts = [str(item) for item in items]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " en " + texts[-1]


def filled(template: str, params: dict[str, Any]) -> str:
    """A message template with its values put in, in Dutch."""
    return template % {k: dutch_list(v) if isinstance(v, list) else v for k, v in params.items()}


class OverdrachtError(Exception):
    """Base of every error a caller may show to a user; status is its HTTP status.

    `message` is Dutch. A message with values in it is written as a template with
    `%(name)s` and its `params`, so the pages can show it in another language
    (gateway/i18n.py); `template` is the text before the values went in. A value that is
    a list of texts goes in as a Dutch list ("a, b en c"); a page translates each text.
    """

    code = "error"
    status = 400

    def __init__(
        self, message: str, code: str | None = None, params: dict[str, Any] | None = None
    ) -> None:
        self.template = message
        self.params = dict(params or {})
        self.message = filled(message, self.params) if self.params else message
        self.code = code or self.code
        super().__init__(self.template, self.code, self.params)  # crosses RPC whole


@deserialize_to_instance
class InvalidInput(OverdrachtError):
    """Refused input. `fields` names, for a form, what is wrong with each field (all at
    once); the message and code are those of the first."""

    code = "invalid_input"
    status = 422

    def __init__(
        self,
        message: str,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code, params)
        self.fields = dict(fields or {})
        self.args = (self.template, self.code, self.fields, self.params)


def checked(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every field's check; one InvalidInput naming each field that is wrong, or the
    values."""
    values: dict[str, Any] = {}
    refused: dict[str, InvalidInput] = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except InvalidInput as exc:
            refused[name] = exc
    if refused:
        first = next(iter(refused.values()))
        raise InvalidInput(
            first.template,
            first.code,
            {name: exc.message for name, exc in refused.items()},
            first.params,
        )
    return values


@deserialize_to_instance
class Unauthenticated(OverdrachtError):
    code = "unauthenticated"
    status = 401


@deserialize_to_instance
class Forbidden(OverdrachtError):
    code = "forbidden"
    status = 403


@deserialize_to_instance
class NotFound(OverdrachtError):
    code = "not_found"
    status = 404


@deserialize_to_instance
class Conflict(OverdrachtError):
    code = "conflict"
    status = 409


@deserialize_to_instance
class Gone(OverdrachtError):
    """It was there but is no more: a used, expired or replaced activation link."""

    code = "gone"
    status = 410


@deserialize_to_instance
class TooLarge(OverdrachtError):
    code = "too_large"
    status = 413


@deserialize_to_instance
class RateLimited(OverdrachtError):
    code = "rate_limited"
    status = 429


@deserialize_to_instance
class Throttled(RateLimited):
    """Too many attempts: refused until retry_after seconds have passed (429, Retry-After)."""

    code = "too_many_attempts"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        retry_after: int = 60,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code, params)
        self.retry_after = max(1, int(retry_after))
        self.args = (self.template, self.code, self.retry_after, self.params)


UNAVAILABLE_MESSAGE = N_("Overdracht is tijdelijk niet bereikbaar. Probeer het later opnieuw.")


@deserialize_to_instance
class Unavailable(OverdrachtError):
    code = "unavailable"
    status = 503

    def __init__(
        self,
        message: str = UNAVAILABLE_MESSAGE,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code, params)


@deserialize_to_instance
class DeadlinePassed(Unavailable):
    """The caller stopped waiting: the request is dropped before anything is done."""

    code = "deadline_passed"


@deserialize_to_instance
class IntegrityFailure(OverdrachtError):
    """A document's stored bytes fail their check: refused, nothing of them is served."""

    code = "integrity_failure"
    status = 502


def error_for_status(status: int) -> type[OverdrachtError]:
    """The error type an HTTP status stands for (documents' file endpoints answer with one)."""
    for kind in (
        InvalidInput,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        Gone,
        TooLarge,
        RateLimited,
        Unavailable,
    ):
        if kind.status == status:
            return kind
    return Unavailable
