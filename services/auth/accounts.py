"""Registering providers: validation and the row, shared by the CLI and later by beheerders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

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


def check_password(password: str) -> None:
    """NIST 800-63B: length, no composition rules."""
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise InvalidInput(
            f"Het wachtwoord moet {MIN_PASSWORD} tot {MAX_PASSWORD} tekens lang zijn.",
            "invalid_password",
        )


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
    check_password(password)
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
