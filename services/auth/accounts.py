"""Registering providers: validation and the row, shared by the CLI and later by beheerders."""

from __future__ import annotations

import itertools
import re
import unicodedata
from datetime import UTC, datetime
from functools import partial
from typing import Any

import regex
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from eventlet import tpool
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from overdracht.contracts import (
    N_,
    PROVIDER_REGISTERED,
    ROLES,
    ZORGVERLENER,
    Conflict,
    InvalidInput,
    checked,
    make_event,
)
from overdracht.typed import dutch_phone, normalized, one_script
from services.auth.models import Provider

PROFESSIONS = ("verloskundige", "gynaecoloog", "kraamverzorgende", "arts", "verpleegkundige")
MIN_PASSWORD = 12
MAX_PASSWORD = 128

hasher = PasswordHasher()
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_AGB = re.compile(r"[0-9]{8}")
_NAME = regex.compile(r"\p{L}[\p{L}\p{M}\p{N} .,()'\u2019-]*")
PHONE_MESSAGE = N_("Ongeldig mobiel nummer: een Nederlands 06-nummer (0612345678 of +31 6 ...).")


def verify_password(password_hash: str | None, password: Any) -> bool:
    """argon2, off the eventlet hub (it is slow on purpose); no hash or no password: False."""
    if password_hash is None or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return bool(tpool.execute(hasher.verify, password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def normalize_username(username: Any) -> str:
    return str(username or "").strip().lower()


def full_name(value: Any) -> str:
    """NFC, whitespace collapsed; no compatibility forms (fullwidth, 𝐀…), no mixed scripts."""
    name = normalized(value)
    if not 2 <= len(name) <= 200:
        raise InvalidInput("Volledige naam ontbreekt.", "invalid_full_name")
    if not one_script(name):
        raise InvalidInput(
            "Volledige naam: gebruik gewone letters van één schrift; "
            "geen tekens uit verschillende alfabetten of speciale lettervormen.",
            "invalid_full_name",
        )
    if not _NAME.fullmatch(name):  # it opens her e-mails: no links, no markup
        raise InvalidInput(
            "Volledige naam: letters, cijfers, spaties en . , ( ) ' -; geen andere tekens.",
            "invalid_full_name",
        )
    return name


def mobile_phone(value: Any) -> str:
    """A Dutch mobile number, stored as 06 and 8 digits."""
    return dutch_phone(value, PHONE_MESSAGE, mobile=True)


#: zxcvbn's score (0-4) a password must reach: 4 is at least 10^10 guesses. Not 3: zxcvbn
#: counts 10^4 guesses for every further piece it matches, so any three pieces reach 3 (the
#: name, the name again and a digit), and it knows no Dutch, so Dutch words already look
#: random to it and cost a Dutch passphrase nothing
MIN_SCORE = 4
#: zxcvbn's thresholds, in log10 guesses, of the scores 1, 2, 3 and 4
_SCORE_FLOORS = (3, 6, 8, 10)
#: zxcvbn's matching grows much faster than the length (a random 128 characters take
#: seconds, 32 a few ms): longer passwords are judged in pieces of this size, whose
#: guesses multiply; a piece that already occurred earlier in the password adds none
_PIECE = 32
#: the platform's own name is a context word for everyone
_SITE_WORDS = ("overdracht",)
_WORD = re.compile(r"[^\W_]{3,}")

#: why zxcvbn found a password guessable, in Dutch (its own feedback is English); the
#: refusal lists them as its value `reasons`
_REASONS = {
    "user_inputs": N_("bevat uw naam, gebruikersnaam of e-mailadres"),
    "passwords": N_("is of bevat een veelgebruikt wachtwoord"),
    "words": N_("bestaat uit een bekend woord of een bekende naam"),
    "l33t": N_(
        "vervangt letters door cijfers of tekens (zoals 4 voor a), wat het niet sterker maakt"
    ),
    "reversed": N_("keert een woord om, wat het niet sterker maakt"),
    "repeat": N_("herhaalt tekens of stukjes (zoals aaa of abcabc)"),
    "sequence": N_("bevat een reeks (zoals abcd of 1234)"),
    "spatial": N_("volgt een patroon op het toetsenbord (zoals qwerty)"),
    "date": N_("bevat een jaartal of datum"),
}


#: what of an account, besides its username, a password must not be made of
CONTEXT_FIELDS = ("full_name", "email", "region", "profession", "organisation")


def password_context(username: str, full_name: str, email: str, *more: str | None) -> list[str]:
    """zxcvbn's user_inputs: the username, the name and its parts, the e-mail's local part.

    The name also as every run of its words written together (Anna de Vries: annadevries,
    devries, annade), forwards and backwards: zxcvbn matches a whole user input only.
    """
    local = email.split("@", 1)[0]
    words = [username, full_name, local, *_SITE_WORDS]
    for text in (username, full_name, local, *(m for m in more if m)):
        words += _WORD.findall(text)
    name = full_name.split()
    for order in (name, name[::-1]):
        words += [
            "".join(order[i:j]) for i in range(len(order)) for j in range(i + 2, len(order) + 1)
        ]
    return sorted({w.lower() for w in words if w})


def provider_context(provider: Provider) -> list[str]:
    return password_context(provider.username, *(getattr(provider, k) for k in CONTEXT_FIELDS))


def check_password(password: str, context: list[str] | None = None) -> None:
    """NIST 800-63B: length, no composition rules, and not guessable (zxcvbn, with context).

    The refusal says in Dutch what made it guessable; zxcvbn's English never reaches anyone.
    """
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise InvalidInput(
            "Het wachtwoord moet %(min)s tot %(max)s tekens lang zijn.",
            "invalid_password",
            params={"min": MIN_PASSWORD, "max": MAX_PASSWORD},
        )
    reasons = weaknesses(password, context or [])
    if reasons:
        raise InvalidInput(
            "Dit wachtwoord is te makkelijk te raden: het %(reasons)s. "
            "Kies bijvoorbeeld een zin van vier of meer ongewone woorden.",
            "weak_password",
            params={"reasons": reasons},
        )
    if reasons is not None:
        raise InvalidInput(
            "Dit wachtwoord is te makkelijk te raden. "
            "Kies bijvoorbeeld een zin van vier of meer ongewone woorden.",
            "weak_password",
        )


def weaknesses(password: str, context: list[str]) -> list[str] | None:
    """None when the password scores MIN_SCORE or more, else what makes it guessable."""
    guesses_log10, matches = 0.0, []
    for start in range(0, len(password), _PIECE):
        piece = password[start : start + _PIECE]
        result = zxcvbn(piece, user_inputs=context, max_length=_PIECE)
        if piece not in password[: start + len(piece) - 1]:  # else it repeats what came before
            guesses_log10 += result["guesses_log10"]
        matches += result["sequence"]
    score = sum(guesses_log10 >= floor for floor in _SCORE_FLOORS)
    if score >= MIN_SCORE:
        return None
    found: list[str] = []
    for match in matches:
        kinds = []
        if match["pattern"] == "dictionary":
            name = match.get("dictionary_name")
            kinds.append(name if name in ("user_inputs", "passwords") else "words")
            kinds += [k for k in ("l33t", "reversed") if match.get(k)]
        elif match["pattern"] in ("repeat", "sequence", "spatial", "date"):
            kinds.append(match["pattern"])
        elif match["pattern"] == "regex":  # zxcvbn's one regex: a recent year
            kinds.append("date")
        found += [_REASONS[k] for k in kinds if _REASONS[k] not in found]
    return found


def email_address(value: Any) -> str:
    """A deliverable-looking address (email-validator's syntax check, no DNS), normalized."""
    try:
        return validate_email(str(value or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise InvalidInput("Ongeldig e-mailadres.", "invalid_email") from None


def profession_of(value: Any) -> str:
    profession = str(value or "").strip().lower()
    if profession not in PROFESSIONS:
        # one field's refusal crosses as its text alone (checked): PROFESSIONS written out
        raise InvalidInput(
            "Beroep moet een van verloskundige, gynaecoloog, kraamverzorgende, arts, "
            "verpleegkundige zijn.",
            "invalid_profession",
        )
    return profession


def organisation_of(value: Any) -> str | None:
    organisation = normalized(value)
    if len(organisation) > 200:
        raise InvalidInput("Organisatie: hoogstens 200 tekens.", "invalid_organisation")
    return organisation or None


def agb_code(value: Any) -> str | None:
    """Vektis' AGB code: 8 digits (its first two the kind of care), or none."""
    code = re.sub(r"[\s.-]", "", str(value or ""))
    if code and not _AGB.fullmatch(code):
        raise InvalidInput("AGB-code: 8 cijfers.", "invalid_agb_code")
    return code or None


#: a care provider's fields as a region's list gives them, each with its check
CARE_PROVIDER_CHECKS = {
    "full_name": full_name,
    "email": email_address,
    "phone": mobile_phone,
    "profession": profession_of,
    "organisation": organisation_of,
    "agb_code": agb_code,
}


def care_provider(data: dict[str, Any]) -> dict[str, Any]:
    """Those fields checked and normalized; InvalidInput names every one that is wrong."""
    checks = {name: partial(check, data.get(name)) for name, check in CARE_PROVIDER_CHECKS.items()}
    try:
        return checked(checks)
    except InvalidInput as exc:
        every = " ".join(exc.fields.values())  # the page shows each beside its field
        raise InvalidInput(every, "invalid_provider", exc.fields) from None


def account_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Every field of an account but its username and password, checked and normalized."""
    role = data.get("role")
    if role not in ROLES:
        raise InvalidInput(
            "Rol moet een van %(roles)s zijn.", "invalid_role", params={"roles": ", ".join(ROLES)}
        )
    region = normalized(data.get("region"))
    if not 1 <= len(region) <= 100:
        raise InvalidInput("Regio ontbreekt.", "invalid_region")
    fields = {
        "full_name": full_name(data.get("full_name")),
        "email": email_address(data.get("email")),
        "phone": mobile_phone(data.get("phone")),
        "region": region,
        "role": role,
        "profession": None,
        "organisation": organisation_of(data.get("organisation")),
        "agb_code": agb_code(data.get("agb_code")),
    }
    if role == ZORGVERLENER:
        try:
            fields["profession"] = profession_of(data.get("profession"))
        except InvalidInput:
            raise InvalidInput(
                "Een zorgverlener heeft een beroep: %(professions)s.",
                "invalid_profession",
                params={"professions": ", ".join(PROFESSIONS)},
            ) from None
    return fields


def free_username(session: Session, name: str) -> str:
    """A username from her name: initials and surname (Anna de Vries: a.devries), numbered
    when taken (a.devries2)."""
    ascii_words = [
        re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", word).lower())
        for word in name.split()
    ]
    words = [w for w in ascii_words if w] or ["zorgverlener"]
    base = (words[0][0] + "." + "".join(words[1:]) if len(words) > 1 else words[0])[:60]
    taken = set(
        session.scalars(
            sa.select(Provider.username).where(
                Provider.username.like(base.replace("_", r"\_") + "%")
            )
        )
    )
    for number in itertools.count(1):
        username = base if number == 1 else f"{base}{number}"
        if username not in taken:
            return username
    raise AssertionError("unreachable")


def register(
    session: Session,
    data: dict[str, Any],
    actor: dict[str, Any],
    now: datetime | None = None,
    *,
    invited: bool = False,
) -> tuple[Provider, dict]:
    """Validate and add an account; return it with its provider.registered event.

    With a password (`provider add`, for scripts) it is active at once; an invited one gets
    its username from her name when none is given, and no password until she activates.
    """
    fields = account_fields(data)
    username = normalize_username(data.get("username"))
    if invited and not username:
        username = free_username(session, fields["full_name"])
    if not _USERNAME.match(username):
        raise InvalidInput(
            "Gebruikersnaam: 2-64 tekens, letters, cijfers, . _ of -.", "invalid_username"
        )
    password_hash = None
    if not invited:
        password = str(data.get("password") or "")
        context = password_context(username, *(fields[k] for k in CONTEXT_FIELDS))
        check_password(password, context)
        password_hash = hasher.hash(password)
    if session.scalar(sa.select(Provider.id).where(Provider.username == username)):
        raise Conflict("Deze gebruikersnaam is al in gebruik.", "username_taken")
    now = now or datetime.now(UTC)
    provider = Provider(
        username=username,
        password_hash=password_hash,
        failed_logins=0,
        created_at=now,
        activated_at=None if invited else now,
        **fields,
    )
    session.add(provider)
    try:
        session.flush()
    except sa.exc.IntegrityError:  # the same username, taken a moment ago by another call
        raise Conflict("Deze gebruikersnaam is al in gebruik.", "username_taken") from None
    event = make_event(
        PROVIDER_REGISTERED,
        actor=actor,
        object={"type": "provider", "id": str(provider.id), "username": username},
        detail={
            "role": fields["role"],
            "region": fields["region"],
            "profession": fields["profession"],
            "invited": invited,
        },
    )
    return provider, event
