"""Registering providers: validation and the row, shared by the CLI and later by beheerders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from overdracht.contracts import (
    PROVIDER_REGISTERED,
    ROLES,
    ZORGVERLENER,
    Conflict,
    InvalidInput,
    make_event,
)
from overdracht.typed import ONE_SCRIPT_MESSAGE, dutch_phone, normalized, one_script
from services.auth.models import Provider

PROFESSIONS = ("verloskundige", "gynaecoloog", "kraamverzorgende", "arts", "verpleegkundige")
MIN_PASSWORD = 12
MAX_PASSWORD = 128

hasher = PasswordHasher()
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_MESSAGE = "Ongeldig mobiel nummer: een Nederlands 06-nummer (0612345678 of +31 6 ...)."


def normalize_username(username: Any) -> str:
    return str(username or "").strip().lower()


def full_name(value: Any) -> str:
    """NFC, whitespace collapsed; no compatibility forms (fullwidth, 𝐀…), no mixed scripts."""
    name = normalized(value)
    if not 2 <= len(name) <= 200:
        raise InvalidInput("Volledige naam ontbreekt.", "invalid_full_name")
    if not one_script(name):
        raise InvalidInput(f"Volledige naam: {ONE_SCRIPT_MESSAGE}", "invalid_full_name")
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

#: why zxcvbn found a password guessable, in Dutch (its own feedback is English)
_REASONS = {
    "user_inputs": "bevat uw naam, gebruikersnaam of e-mailadres",
    "passwords": "is of bevat een veelgebruikt wachtwoord",
    "words": "bestaat uit een bekend woord of een bekende naam",
    "l33t": "vervangt letters door cijfers of tekens (zoals 4 voor a), wat het niet sterker maakt",
    "reversed": "keert een woord om, wat het niet sterker maakt",
    "repeat": "herhaalt tekens of stukjes (zoals aaa of abcabc)",
    "sequence": "bevat een reeks (zoals abcd of 1234)",
    "spatial": "volgt een patroon op het toetsenbord (zoals qwerty)",
    "date": "bevat een jaartal of datum",
}


def password_context(username: str, full_name: str, email: str, *more: str | None) -> list[str]:
    """zxcvbn's user_inputs: the username, the name and its parts, the e-mail's local part."""
    local = email.split("@", 1)[0]
    words = [username, full_name, full_name.replace(" ", ""), local, *_SITE_WORDS]
    for text in (username, full_name, local, *(m for m in more if m)):
        words += _WORD.findall(text)
    return sorted({w.lower() for w in words if w})


def check_password(password: str, context: list[str] | None = None) -> None:
    """NIST 800-63B: length, no composition rules, and not guessable (zxcvbn, with context).

    The refusal says in Dutch what made it guessable; zxcvbn's English never reaches anyone.
    """
    if not isinstance(password, str) or not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise InvalidInput(
            f"Het wachtwoord moet {MIN_PASSWORD} tot {MAX_PASSWORD} tekens lang zijn.",
            "invalid_password",
        )
    reasons = weaknesses(password, context or [])
    if reasons is not None:
        message = "Dit wachtwoord is te makkelijk te raden"
        if reasons:
            message += ": het " + _dutch_list(reasons)
        raise InvalidInput(
            message + ". Kies bijvoorbeeld een zin van vier of meer ongewone woorden.",
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


def _dutch_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " en " + items[-1]


def register(
    session: Session, data: dict[str, Any], actor: dict[str, Any]
) -> tuple[Provider, dict]:
    """Validate and add a provider; return it with its provider.registered event."""
    username = normalize_username(data.get("username"))
    if not _USERNAME.match(username):
        raise InvalidInput(
            "Gebruikersnaam: 2-64 tekens, letters, cijfers, . _ of -.", "invalid_username"
        )
    name = full_name(data.get("full_name"))
    email = str(data.get("email") or "").strip()
    if not _EMAIL.match(email):
        raise InvalidInput("Ongeldig e-mailadres.", "invalid_email")
    phone = mobile_phone(data.get("phone"))
    region = str(data.get("region") or "").strip()
    if not 1 <= len(region) <= 100:
        raise InvalidInput("Regio ontbreekt.", "invalid_region")
    role = data.get("role")
    if role not in ROLES:
        raise InvalidInput(f"Rol moet een van {', '.join(ROLES)} zijn.", "invalid_role")
    profession = data.get("profession") or None
    if role == ZORGVERLENER and profession not in PROFESSIONS:
        raise InvalidInput(
            f"Een zorgverlener heeft een beroep: {', '.join(PROFESSIONS)}.", "invalid_profession"
        )
    password = str(data.get("password") or "")
    check_password(password, password_context(username, name, email, region, profession))
    if session.scalar(sa.select(Provider.id).where(Provider.username == username)):
        raise Conflict("Deze gebruikersnaam is al in gebruik.", "username_taken")

    provider = Provider(
        username=username,
        full_name=name,
        email=email,
        phone=phone,
        region=region,
        role=role,
        profession=profession,
        password_hash=hasher.hash(password),
        failed_logins=0,
        created_at=datetime.now(UTC),
    )
    session.add(provider)
    session.flush()
    event = make_event(
        PROVIDER_REGISTERED,
        actor=actor,
        object={"type": "provider", "id": str(provider.id), "username": username},
        detail={"role": role, "region": region, "profession": profession},
    )
    return provider, event
