"""What identifies a client: birth date, BSN and phone, checked and normalised the same
way wherever they are typed (clients keeps them as keyed hashes, and so does audit, with a
key of its own, to find her records after she is gone)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from typing import Any

from stdnum.exceptions import ValidationError
from stdnum.nl import bsn as stdnum_bsn

from overdracht.contracts import N_, InvalidInput, checked
from overdracht.timezone import today
from overdracht.typed import dutch_phone

PHONE_MESSAGE = N_(
    "Telefoonnummer: geen geldig Nederlands nummer van 10 cijfers (zoals 0612345678)."
)


def parse_date(value: Any, field: str, missing: str, invalid: str) -> date:
    """A date typed as JJJJ-MM-DD; refused with missing or invalid, the field's own texts.

    Each is a whole literal text (marked with N_ where it is written): a refusal of one
    field of a form crosses as its text alone (contracts.checked), with no values to put in.
    """
    if not value:
        raise InvalidInput(missing, "missing_" + field)
    try:
        return date.fromisoformat(str(value))
    except ValueError:  # its message repeats the input, which may be anything typed
        raise InvalidInput(invalid, "invalid_" + field) from None


def birth_date(value: Any) -> date:
    parsed = parse_date(
        value,
        "birth_date",
        N_("Geboortedatum ontbreekt."),
        N_("Geboortedatum is geen geldige datum (JJJJ-MM-DD)."),
    )
    if not date(1900, 1, 1) <= parsed <= today():
        raise InvalidInput("Geboortedatum ligt niet in het verleden.", "invalid_birth_date")
    return parsed


def bsn(value: Any) -> str:
    try:
        return stdnum_bsn.validate(str(value))
    except ValidationError:
        raise InvalidInput("Dit is geen geldig BSN (elfproef).", "invalid_bsn") from None


def phone(value: Any) -> str:
    """A valid Dutch number, in the national 10-digit form: 06…, 020…

    Stored hashes are of exactly this form, so +31 6…, 0031 6… and 06-… all find her.
    """
    return dutch_phone(value, PHONE_MESSAGE)


def keyed_hash(pepper: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 with a secret pepper: lookup without keeping the number."""
    return hmac.new(pepper, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def search_criteria(data: Any) -> tuple[date, str | None, str | None]:
    """birth date plus BSN and/or phone; anything else is refused, every field at once."""
    if not isinstance(data, dict):
        raise InvalidInput("Zoekgegevens ontbreken.", "invalid_input")
    raw_bsn, raw_phone = data.get("bsn") or None, data.get("phone") or None

    def the_bsn() -> str | None:
        if raw_bsn is None and raw_phone is None:
            raise InvalidInput(
                "Vul naast de geboortedatum een BSN of telefoonnummer in.", "missing_bsn_or_phone"
            )
        return bsn(raw_bsn) if raw_bsn else None

    found = checked(
        {
            "birth_date": lambda: birth_date(data.get("birth_date")),
            "bsn": the_bsn,
            "phone": lambda: phone(raw_phone) if raw_phone else None,
        }
    )
    return found["birth_date"], found["bsn"], found["phone"]
